"""TFDS builders of the project's datasets, one module each (see ../common.py).

Modules are imported lazily through ``relate_jax.data.registry``; importing
this package imports none of them.
"""
