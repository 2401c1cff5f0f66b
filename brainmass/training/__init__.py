r"""Task training of neural-mass networks: `Trainer`, `TrainResult`, `NeuralMassSeqNetwork`.

A *sequence network* is an `eqx.Module` called as `net(inputs, *, key=None) -> outputs`
with `inputs` `(T, n_inputs)` and `outputs` `(T, n_outputs)`. A task is `(inputs, targets)`:
`inputs` `(n_trials, T, n_inputs)`; `targets` `(n_trials,)` integer class labels read from
the output at the last time step (or float targets for `loss="mse"`).

    trainer = bm.Trainer(net, "cross_entropy", learning_rate=1e-2)
    result = trainer.fit(key, (inputs, targets), epochs=20, batch_size=32, checkpoint="run.ckpt")
    result.network, result.history["val_accuracy"], result.plot()

Training is minibatch gradient descent (optax) on the mean per-trial loss, one compiled step
per batch. Every epoch draws its keys from `fold_in(key, epoch)`, so an interrupted run resumed
from its checkpoint follows exactly the trajectory of an uninterrupted one.
"""

from ._result import NonFiniteLossError as NonFiniteLossError
from ._result import TrainResult as TrainResult
from ._seqnet import NeuralMassSeqNetwork as NeuralMassSeqNetwork
from ._trainer import Trainer as Trainer

__all__ = ["NeuralMassSeqNetwork", "NonFiniteLossError", "Trainer", "TrainResult"]
