"""Worked examples, each runnable as ``python -m neurotop.trainer.examples.<name>`` (CPU, under a minute):

* ``mlp_digits``: a plain PyTorch loop with the SDK: an MLP classifier, params read every step,
  at the epoch boundary and through ``on_change``; probes chosen by layer type;
* ``conv_autoencoder``: a convolutional autoencoder with image samples, probes chosen by name on a
  cadence in seconds, and its own ``save``/``load``;
* ``plain_print``: no SDK at all, for ``neurotop run`` (metrics read from its printed lines);
* ``sdk_cost``: what ``log()`` and ``step()`` cost the training loop, measured.
"""
