"""Write a synthetic W1 test connectome (.npz with `weights`, `tract_lengths`).

80 regions, symmetric sparse random (exponential) weights scaled to max 1, zero diagonal,
tract lengths uniform in [10, 200] mm (symmetric, zero diagonal).
Only numpy is needed, so any of the peer environments can run it:

    python benchmarks/peers/make_test_connectome.py --out /tmp/w1_connectome.npz
"""

import argparse

import numpy as np


def make(n=80, seed=0, density=0.25):
    rng = np.random.default_rng(seed)
    # sparse (25 % density), heavy-tailed weights, like a tractography connectome;
    # dense uniform weights would give row sums ~40 and a very stiff network
    w = rng.exponential(1.0, (n, n)) * (rng.random((n, n)) < density)
    w = np.triu(w, 1)
    w = w + w.T
    w /= w.max()
    lengths = np.triu(rng.uniform(10.0, 200.0, (n, n)), 1)
    lengths = lengths + lengths.T
    return w, lengths


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="/tmp/w1_connectome.npz")
    p.add_argument("--n", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    w, lengths = make(a.n, a.seed)
    np.savez(a.out, weights=w, tract_lengths=lengths)
    print(a.out)


if __name__ == "__main__":
    main()
