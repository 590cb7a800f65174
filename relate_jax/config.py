"""Base configuration shared by every experiment config in ``configs/``.

Every field has a one-line comment. Experiment configs call :func:`base_config`
and override what differs; :func:`validate` checks a resolved config once, with
clear messages, before anything is built.

Defaults follow the reference PyTorch code (``REFERENCE.md``); where the paper
differs, the paper's choice is reachable through a field named here.
"""

import importlib.util
import os

import ml_collections

# Model names.
STATIC = 'relate_static'  # RELATE with the interaction module Γ (paper eq. 1-2).
ORDERED = 'relate_static_order'  # Markov pose chain for stacked scenes (paper eq. 3).
VIDEO = 'relate_video'  # Γ for θ(0), then a velocity rollout θ(t+1) = θ(t) + v(t+1) (paper §3.2).
MODEL_NAMES = (STATIC, ORDERED, VIDEO)

PIXEL_RANGES = ('tanh', 'reference')
POOLINGS = ('max', 'sum')


def base_config() -> ml_collections.ConfigDict:
  """The reference's `relate_static` CLEVR setting (configs/clevr-train.json)."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Root PRNG seed: parameters, latents, data order, sample grids.

  c.data = ml_collections.ConfigDict()
  c.data.name = 'shapes'  # Dataset builder: shapes, clevr, clevr5, clevr5_vbg, shapestacks, real_traffic, balls_in_bowl.
  c.data.data_dir = ''  # Directory with the raw dataset in its published layout (TFDS manual dir).
  c.data.tfds_dir = ''  # Where prepared array_record files go; '' = $RELATE_JAX_DATA or ~/.cache/relate_jax/tensorflow_datasets.
  c.data.image_size = 128  # Square training resolution (PIL LANCZOS resize, as the reference).
  c.data.pixel_range = 'tanh'  # 'tanh': real images in [-1, 1] like G's tanh output; 'reference': [-0.5, 0.5] as the PyTorch code fed them.
  c.data.num_threads = 2  # grain read threads.
  c.data.prefetch = 2  # Batches prefetched by the grain iterator.

  c.model = ml_collections.ConfigDict()
  c.model.name = STATIC  # One of MODEL_NAMES.
  c.model.num_objects = 6  # K: object slots.
  c.model.min_objects = 3  # K_min: fewest objects present in a training scene.
  c.model.obj_size = 6  # H': side of the object window inside the H x H scene tensor.
  c.model.bg_dim = 1  # Nb: size of the background code z0.
  c.model.obj_dim = 20  # Nf: size of each object code z_k.
  c.model.upsample = False  # The 256x256 variant: 32x32 scene tensor, object windows upsampled x2.
  c.model.obj_channels = 512  # Channels of the learned object constant T_f and of Ψf's first layers.
  c.model.scene_channels = 256  # Channels C of the scene tensor W (and of T_b).
  c.model.decoder_channels = (128, 64, 64)  # Channels of the image decoder G's hidden layers.
  c.model.disc_channels = (64, 128, 256, 512, 1024)  # Channels of D's stride-2 convs (128 px needs 5).
  c.model.interaction_hidden = 32  # Width of Γ's MLPs f and g.
  c.model.scale_hidden = 32  # Width of the scale MLP sc.
  c.model.scale_augment = True  # Scale augmentation s = 1 + 2 tanh(sc(z0, z_k, θ_k)) (reference default; paper Table A3).
  c.model.use_interaction = True  # Γ on; False gives BlockGAN2D poses (θ = θ̂).
  c.model.residual = True  # θ = coeff_xy·θ̂ + xy_mod·Γ; False drops θ̂ ("w/o residual").
  c.model.xy_mod = 0.5  # Scale of Γ's correction (reference 0.5; the paper writes 1).
  c.model.coeff_xy = 1.0  # Weight of θ̂ in the residual.
  c.model.pose_range = 0.625  # θ̂ ~ U[-r, r]^2 (reference x_max/8; paper 0.6).
  c.model.pose_clamp = 2.0  # Corrected poses are clamped to [-c, c].
  c.model.absent_pose = -2.0  # Pose written into absent slots (reference parks them at (-2, -2)).
  c.model.pooling = 'max'  # Scene composition: 'max' (reference) or 'sum' (BallsInBowl).
  c.model.fixed_objects = False  # One constant T_f per slot and constant style (BallsInBowl); implies no scale MLP input z0.
  c.model.eval_bg_range = 0.75  # z0 ~ U[-r, r] when sampling for evaluation (reference 0.75; paper 0.5 or 1).
  c.model.eval_all_objects = True  # Evaluation samples render every slot (reference); False samples K like training.
  c.model.clip_background = True  # Keep the zero canvases of every slot in the max, clipping W at 0 (reference quirk §9.14).
  c.model.hide_absent = False  # Zero the canvases of absent slots so they cannot re-enter the frame when s is large (reference: False).
  c.model.order_offset = 0.3  # Ordered model: max extra vertical step per stacked object (reference offset_mlp).
  c.model.order_f1_sees_pose = False  # Ordered model: f1 also takes θ_{k-1} (paper eq. 3); False = reference.
  c.model.order_position_on_single = False  # Ordered model: position loss on a render of the bottom block alone; False = on the full stack (reference).
  c.model.clip_length = 10  # Video: T, frames per training clip seen by D (reference seq_len).
  c.model.rollout_steps = 20  # Video: rollout steps in training; a clip starts at s ~ U{0..rollout_steps − T − 2}.
  c.model.past_velocities = 3  # Video: velocities of history the dynamics Γ_v sees (reference past).
  c.model.sample_frames = 32  # Video: default frames of a sampled video (reference len_ev); any length works.
  c.model.sample_start = 1  # Video: displacement index of a sampled video's first frame (reference validation: 1).
  c.model.reference_presence_bug = False  # Video: mask Γ_v's partners on the latest vx as the reference does (absent objects act as present).
  c.model.render_chunk = 0  # Video sampling: frames per image-decoder call (bounds memory); 0 = all frames at once.
  c.model.compute_dtype = 'float32'  # G/D activations and matmuls: 'float32' or 'bfloat16' (weights, IN/SN statistics, losses stay float32).

  c.loss = ml_collections.ConfigDict()
  c.loss.gan = 1.0  # Non-saturating BCE GAN loss (l_disc, l_gen, l_gen_eval).
  c.loss.style_disc = 1.0  # Style heads' BCE loss on the discriminator side.
  c.loss.style_gen = 0.0  # Style loss on the generator side (reference l_style_gen_eval = 0).
  c.loss.position = 1.0  # Position regression on the single-object render (l_xy).
  c.loss.gradient_penalty = 0.0  # DRAGAN-style gradient penalty on real images (grad_pen configs: 1).

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4  # Adam learning rate, both players.
  c.optim.b1 = 0.0  # Adam beta1.
  c.optim.b2 = 0.999  # Adam beta2.
  c.optim.eps = 1e-8  # Adam epsilon.
  c.optim.gen_steps = 2  # M: generator updates per discriminator update.

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # Global batch (real images per D update; latents per update).
  c.train.num_steps = 60_000  # Iterations (1 D + M G updates each).
  c.train.log_every = 50  # Steps between progress lines and TensorBoard scalars.
  c.train.sample_every = 1000  # Steps between sample grids (fixed latents).
  c.train.checkpoint_every = 1000  # Steps between Orbax checkpoints.
  c.train.keep_checkpoints = 3  # Checkpoints kept on disk.
  c.train.num_grid = 64  # Images in the sample grid.
  c.train.ema_decay = 0.0  # EMA of generator weights for sampling; 0 = off (reference).
  c.train.reference_schedule = False  # D called separately per sub-batch in the reference's order, one power iteration per call (slower; for parity).

  c.eval = ml_collections.ConfigDict()
  c.eval.metrics = ()  # Metric protocol names run during training, e.g. ('fid10k',).
  c.eval.every = 0  # Steps between in-training evaluations; 0 = never.
  c.eval.split = 'test'  # Real split the metrics compare against.
  c.eval.batch_size = 100  # Batch for sampling and feature extraction.
  c.eval.resolution = 0  # Resize both sides to this before the detector; 0 = native size.
  return c


# Ablations of the paper's Table 1, as switches on any config (`configs/X.py:<variant>`).
ABLATIONS = {
    # BlockGAN2D: independent poses (no Γ) and no position regression.
    'blockgan2d': {'model.use_interaction': False, 'loss.position': 0.0},
    # "w/o residual": θ is Γ's output alone, θ̂ is not added back.
    'no_residual': {'model.residual': False},
    # "w/o pos. reg.": no position-regression loss.
    'no_position': {'loss.position': 0.0},
}


def apply_variant(config: ml_collections.ConfigDict, variant: str,
                  own: dict[str, dict] | None = None) -> ml_collections.ConfigDict:
  """Applies a named variant: one of the config file's `own` ones or an ABLATION.

  Variants combine with '+', e.g. 'main+blockgan2d'. '' leaves the config unchanged.
  """
  table = dict(ABLATIONS, **(own or {}))
  for name in filter(None, variant.split('+')):
    if name not in table:
      raise ValueError(f'Unknown variant {name!r}; this config knows {sorted(table)}')
    for path, value in table[name].items():
      group, field = path.split('.')
      config[group][field] = value
  return config


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """Loads `configs/X.py` or `configs/X.py:variant` like the --config flag does."""
  path, _, variant = path.partition(':')
  name = 'relate_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError with a readable message when `config` is inconsistent."""
  m = config.model
  problems = []
  if m.name not in MODEL_NAMES:
    problems.append(f'model.name={m.name!r} is not one of {MODEL_NAMES}')
  if not 1 <= m.min_objects <= m.num_objects:
    problems.append(f'need 1 <= model.min_objects ({m.min_objects}) <= model.num_objects ({m.num_objects})')
  scene = 16 * (2 if m.upsample else 1)
  window = m.obj_size * (2 if m.upsample else 1)
  if window > scene or (scene - window) % 2:
    problems.append(f'model.obj_size={m.obj_size} must leave an even margin inside the {scene}x{scene} scene')
  if m.compute_dtype not in ('float32', 'bfloat16'):
    problems.append(f'model.compute_dtype={m.compute_dtype!r} is not float32 or bfloat16')
  if m.pooling not in POOLINGS:
    problems.append(f'model.pooling={m.pooling!r} is not one of {POOLINGS}')
  if config.data.pixel_range not in PIXEL_RANGES:
    problems.append(f'data.pixel_range={config.data.pixel_range!r} is not one of {PIXEL_RANGES}')
  size = config.data.image_size
  if size < scene or size & (size - 1):
    problems.append(f'data.image_size={size} must be a power of two >= the scene size {scene}')
  elif len(m.disc_channels) != size.bit_length() - 3:
    problems.append(f'model.disc_channels has {len(m.disc_channels)} entries; {size}x{size} images '
                    f'need {size.bit_length() - 3} stride-2 convs down to 4x4')
  if config.optim.gen_steps < 1:
    problems.append('optim.gen_steps must be >= 1')
  if config.train.batch_size < 1 or config.train.num_steps < 0:
    problems.append('train.batch_size must be >= 1 and train.num_steps >= 0')
  if not 0.0 <= config.train.ema_decay < 1.0:
    problems.append('train.ema_decay must be in [0, 1)')
  if problems:
    raise ValueError('Invalid config:\n  - ' + '\n  - '.join(problems))
