"""digitnet: draw a digit, recognise it, and train MNIST models with live curves.

The package imports nothing by itself, so ``python -m digitnet.calibrate`` (or any module run as a
script) is not imported twice; import what you need from its module (``digitnet.training``, ...).
"""
