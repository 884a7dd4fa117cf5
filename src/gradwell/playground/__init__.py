"""``gradwell playground``: TensorFlow Playground, with gradwell training live behind it.

A local web server (Starlette on uvicorn, loopback only by default, a random
token in the URL like a notebook server's) serves one page: the Playground's 2-D
data sets, features, a network grown by clicking, a heatmap that learns while
you watch, and the training doctor's findings as they appear, each with a button
that applies its remedy. Training is ``gw.fit`` in the server process.

The server needs the ``playground`` extra (``pip install 'gradwell[playground]'``);
the settings and the training run (:mod:`.config`, :mod:`.run`) need only gradwell.
"""

from .config import Config

__all__ = ["Config"]
