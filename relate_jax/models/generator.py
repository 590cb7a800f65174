"""The RELATE generator: Ψb, Ψf, T_b, T_f, Γ, sc and the image decoder G in one module.

REFERENCE §2.1-2.3. Scene tensor W on an S0 x S0 grid (S0 = 16; 32 with model.upsample):

  θ      = Γ(z, θ̂, m, z0)                  (or θ̂, or the stack chain, or given `poses`)
  s_k    = 1 + 2·tanh(sc([z0, z_k, θ_k]))   (1 without scale augmentation)
  W_k    = place(pad(Ψf(T_f, z_k)), s_k, θ_k)     object canvases, zero outside the window
  W_0    = Ψb(T_b, z0)
  W      = max(W_1 … W_K, W_0)   (or Σ with model.pooling = 'sum')
  x      = tanh(G(W))

The K object decoders run as one batched decoder over B·K; the full scene and the
single-object scene [W_select, W_0] go through G as one batch of 2B (two "frames" per
sample). The pieces (`scene_constants`, `corrected_poses`, `object_scales`, `object_windows`,
`frame_scenes`, `render_frames`, `composition_masks`) are shared with the video model
(video.py), which renders F frames per sample from the same windows and background, and
with the editing tools (relate_jax/editing.py): `compositions` renders components of a
scene (the background alone, each object alone or over the background) in the same G batch.

Mixed precision: Ψb, Ψf and G compute in model.compute_dtype (W too); Γ, the stack chain and
sc (tiny MLPs whose outputs are geometry), the placement weights and the tanh output stay
float32.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from relate_jax import config as config_lib
from relate_jax.models import layers
from relate_jax.models.interaction import Interaction, StackChain
from relate_jax.models.latents import Latents
from relate_jax.models.placement import place

Array = jax.Array

REFERENCE_IMAGE_SIZE = 128


def scene_size(config: ml_collections.ConfigDict) -> int:
  """S0, the side of the scene tensor W."""
  return 32 if config.upsample else 16


def window_size(config: ml_collections.ConfigDict) -> int:
  """Side of Ψf's output window (H', doubled by the upsample variant's stride-2 deconv)."""
  return config.obj_size * (2 if config.upsample else 1)


class BackgroundDecoder(nn.Module):
  """Ψb (reference `AdaIngen_bg`): AdaIN → LReLU(0.2) → ConvT(k3) ×2 → AdaIN → LReLU(0.2).

  Post-AdaIN activation LeakyReLU(0.2), no activation after the convolutions (the reverse of
  Ψf). constant T_b (1, S0, S0, C), z0 (B, Nb) → (B, S0, S0, C).
  """
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, constant: Array, background: Array) -> Array:
    c = self.config
    dt = layers.compute_dtype(c)
    x = layers.leaky_relu(layers.AdaIN(dt, name='style1')(constant, background))
    x = layers.ConvTranspose2d(c.obj_channels, 3, 1, 1, dt, name='deconv1')(x)
    x = layers.leaky_relu(layers.AdaIN(dt, name='style2')(x, background))
    x = layers.ConvTranspose2d(c.scene_channels, 3, 1, 1, dt, name='deconv2')(x)
    return layers.leaky_relu(layers.AdaIN(dt, name='style3')(x, background))


class ObjectDecoder(nn.Module):
  """Ψf (reference `AdaIngen_obj` without placement).

  AdaIN (identity activation) → ConvT(k3 s1) + LReLU(0.2) → AdaIN → ConvT(k3 s1; k4 s2 with
  upsample) + LReLU(0.2) → AdaIN. constant T_f (1 or N, H', H', C_f), z (N, Nf) →
  (N, window, window, C).
  """
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, constant: Array, appearance: Array) -> Array:
    c = self.config
    dt = layers.compute_dtype(c)
    x = layers.AdaIN(dt, name='style1')(constant, appearance)
    x = layers.leaky_relu(
        layers.ConvTranspose2d(c.obj_channels, 3, 1, 1, dt, name='deconv1')(x))
    x = layers.AdaIN(dt, name='style2')(x, appearance)
    k, s = (4, 2) if c.upsample else (3, 1)
    x = layers.leaky_relu(
        layers.ConvTranspose2d(c.scene_channels, k, s, 1, dt, name='deconv2')(x))
    return layers.AdaIN(dt, name='style3')(x, appearance)


def decoder_layers(config: ml_collections.ConfigDict,
                   image_size: int) -> list[tuple[int, int, int, int, bool]]:
  """Layers of G as (features, kernel, stride, padding, leaky_relu_after).

  With n = log2(image_size / S0) stride-2 layers and channels c = model.decoder_channels:
  * S0 = 16 (reference 128 px for n = 3): n − 1 ConvT(k4 s2) with c[0], c[1], … (last entry
    repeated), ConvT(k3 s1) with c[-1], ConvT(k4 s2) with c[-1], ConvT(k3 s1 → 3).
  * S0 = 32 (upsample; reference 256 px for n = 3): ConvT(k5 s1) with c[0] and c[1], n
    ConvT(k4 s2) with c[2] (the last without activation, as the reference), ConvT(k3 s1 → 3).
  """
  s0 = scene_size(config)
  n = round(math.log2(image_size / s0))
  if image_size != s0 * 2**n:
    raise ValueError(f'image size {image_size} is not scene size {s0} times a power of two')
  ch = config.decoder_channels
  pick = lambda i: ch[min(i, len(ch) - 1)]
  if config.upsample:
    spec = [(pick(0), 5, 1, 2, True), (pick(1), 5, 1, 2, True)]
    spec += [(pick(2), 4, 2, 1, i < n - 1) for i in range(n)]
  else:
    spec = [(pick(i), 4, 2, 1, True) for i in range(n - 1)]
    spec.append((ch[-1], 3, 1, 1, True))
    if n >= 1:
      spec.append((ch[-1], 4, 2, 1, True))
  return spec + [(3, 3, 1, 1, False)]


class ImageDecoder(nn.Module):
  """G (reference `upsample_net`): scene tensor (N, S0, S0, C) → pre-tanh image (N, S, S, 3).

  Computes in model.compute_dtype; the output is float32.
  """
  config: ml_collections.FrozenConfigDict
  image_size: int

  @nn.compact
  def __call__(self, scene: Array) -> Array:
    dt = layers.compute_dtype(self.config)
    x = scene
    for i, (f, k, s, p, act) in enumerate(decoder_layers(self.config, self.image_size)):
      x = layers.ConvTranspose2d(f, k, s, p, dt, name=f'deconv{i + 1}')(x)
      if act:
        x = layers.leaky_relu(x)
    return x.astype(jnp.float32)


def compose(canvases: Array, background: Array, pooling: str,
            visible: Array | None = None) -> Array:
  """Scene tensor from object canvases and the background canvas.

  canvases: (B, K, H, W, C); background: (B, H, W, C).
  pooling 'max': element-wise max over [W_1 … W_K, W_0]. With visible=None every canvas
  takes part everywhere, including its zeros outside the object window, so the background
  is clipped at 0 where no object is drawn (reference). visible (B, K, H, W, 1) bool, or
  (B, K, 1, 1, 1) to leave whole slots out, restricts each object to where it is True
  (where no object takes part the background keeps negative values).
  pooling 'sum': Σ_k W_k + W_0 over the canvases that are visible.
  """
  if pooling == 'sum':
    if visible is not None:
      canvases = jnp.where(visible, canvases, 0.0)
    return jnp.sum(canvases, axis=1) + background
  if visible is not None:
    canvases = jnp.where(visible, canvases, -jnp.inf)
  return jnp.maximum(jnp.max(canvases, axis=1), background)


def object_scales(config: ml_collections.FrozenConfigDict, background: Array,
                  appearance: Array, poses: Array) -> Array:
  """s = 1 + 2·tanh(sc([z0, z_k, θ_k])), or 1 without scale augmentation.

  Creates the 'scale' MLP in the calling module (it always exists, as in the reference
  state dict). background z0 (B, Nb); appearance z (B, K, Nf'); poses θ (B, ..., K, 2) with
  any frame axes between B and K. Returns s (B, ..., K).
  """
  c = config
  z = jnp.broadcast_to(appearance.reshape(appearance.shape[:1] + (1,) * (poses.ndim - 3)
                                          + appearance.shape[1:]),
                       poses.shape[:-1] + appearance.shape[-1:])
  z0 = jnp.broadcast_to(background.reshape(background.shape[:1] + (1,) * (poses.ndim - 2)
                                           + background.shape[-1:]),
                        poses.shape[:-1] + background.shape[-1:])
  sc = layers.Mlp((c.scale_hidden, c.scale_hidden, 1), final=jnp.tanh, name='scale')(
      jnp.concatenate([z0, z, poses], -1))[..., 0]
  if c.scale_augment and not c.fixed_objects:
    return 1.0 + 2.0 * sc
  return jnp.ones_like(sc)


def object_windows(config: ml_collections.FrozenConfigDict, constant: Array,
                   appearance: Array) -> Array:
  """Ψf once over all B·K slots, zero-padded to the scene size.

  Creates 'object_decoder' in the calling module. constant T_f (1 or K, H', H', C_f);
  appearance z (B, K, Nf'). Returns (B, K, S0, S0, C): each object centred in its canvas.
  """
  c = config
  b, k, _ = appearance.shape
  if c.fixed_objects:
    constant = jnp.tile(constant, (b, 1, 1, 1))
  windows = ObjectDecoder(c, name='object_decoder')(constant, appearance.reshape(b * k, -1))
  margin = (scene_size(c) - window_size(c)) // 2
  windows = jnp.pad(windows, ((0, 0), (margin, margin), (margin, margin), (0, 0)))
  return windows.reshape((b, k) + windows.shape[1:])


def frame_scenes(config: ml_collections.FrozenConfigDict, windows: Array, background: Array,
                 scales: Array, poses: Array, present: Array, takes_part: Array,
                 shown: Array | None = None) -> Array:
  """Scene tensors W of F frames per sample: placement and composition, no parameters.

  windows (B, K, S0, S0, C) from `object_windows`; background W_0 (B, S0, S0, C); scales s
  (B, F, K); poses θ (B, F, K, 2); present (B, K); takes_part (B, F, K) bool, the slots
  composed into each frame (all slots for a scene, only the selected one for the
  single-object render). shown (B, F, K + 1) bool, optional: per frame, whether each
  object's content and (last entry) the background are drawn; a hidden object keeps a
  zero canvas (it still takes part where takes_part says so, like an empty slot), a hidden
  background is W_0 = 0. Returns (B·F, S0, S0, C).
  """
  c = config
  b, f, k = scales.shape
  s0, win = scene_size(c), window_size(c)
  canvases = jnp.broadcast_to(windows[:, None], (b, f) + windows.shape[1:])
  if shown is not None:
    canvases = canvases * shown[:, :, :k, None, None, None].astype(canvases.dtype)
  n = b * f * k
  canvases = place(canvases.reshape((n,) + windows.shape[2:]), scales.reshape(n),
                   poses.reshape(n, 2)).reshape(b * f, k, s0, s0, -1)
  present = jnp.broadcast_to(present[:, None], (b, f, k)).reshape(b * f, k)
  if c.hide_absent:
    canvases = canvases * present[:, :, None, None, None].astype(canvases.dtype)
  visible = takes_part.reshape(b * f, k)[:, :, None, None, None]
  if not c.clip_background and c.pooling == 'max':
    margin = (s0 - win) // 2
    ones = jnp.pad(jnp.ones((n, win, win, 1)), ((0, 0), (margin, margin), (margin, margin),
                                                (0, 0)))
    footprint = place(ones, scales.reshape(n), poses.reshape(n, 2)).reshape(b * f, k, s0, s0, 1)
    visible = visible & (footprint > 0) & (present[:, :, None, None, None] > 0)
  scene_background = jnp.broadcast_to(background[:, None], (b, f) + background.shape[1:])
  if shown is not None:
    scene_background = scene_background * shown[:, :, k, None, None, None].astype(
        scene_background.dtype)
  return compose(canvases, scene_background.reshape((b * f,) + background.shape[1:]),
                 c.pooling, visible)


def render_frames(module: nn.Module, config: ml_collections.FrozenConfigDict, image_size: int,
                  windows: Array, background: Array, scales: Array, poses: Array,
                  present: Array, takes_part: Array, chunk: int = 0,
                  shown: Array | None = None) -> tuple[Array, Array | None]:
  """Images of F frames per sample through G ('image_decoder' of `module`, the caller).

  Arguments as `frame_scenes`. With 0 < chunk < F, the frames are placed, composed and
  decoded `chunk` at a time in a lifted scan over chunks (parameters broadcast), so memory
  is bounded by B·chunk scenes whatever F is and the compiled program does not grow with
  F (the frame axis is padded to a multiple of `chunk` by repeating the last frame).
  Returns images (B, F, S, S, 3) in [-1, 1] and, without chunking, the scene tensors of
  each sample's first frame (B, S0, S0, C) (None with chunking).
  """
  b, f, _ = scales.shape

  def decode(scales, poses, takes_part, shown=None):
    scenes = frame_scenes(config, windows, background, scales, poses, present, takes_part,
                          shown)
    images = jnp.tanh(ImageDecoder(config, image_size, name='image_decoder')(scenes))
    return images.reshape((b, -1) + images.shape[1:]), scenes

  if not chunk or f <= chunk:
    images, scenes = decode(scales, poses, takes_part, shown)
    return images, scenes.reshape((b, f) + scenes.shape[1:])[:, 0]
  count = -(-f // chunk)

  def split(x):  # (B, F, ...) -> (count, B, chunk, ...)
    x = jnp.pad(x, [(0, 0), (0, count * chunk - f)] + [(0, 0)] * (x.ndim - 2), mode='edge')
    return jnp.swapaxes(x.reshape((b, count, chunk) + x.shape[2:]), 0, 1)

  def body(scope_module, carry, inputs):
    del scope_module  # G is created inside the lifted scope under the caller's names.
    return carry, decode(*inputs)[0]

  scan = nn.scan(body, variable_broadcast='params', split_rngs={'params': False})
  inputs = (split(scales), split(poses), split(takes_part))
  if shown is not None:
    inputs += (split(shown),)
  _, images = scan(module, 0, inputs)
  images = jnp.swapaxes(images, 0, 1).reshape((b, count * chunk) + images.shape[3:])
  return images[:, :f], None


def corrected_poses(config: ml_collections.FrozenConfigDict, appearance: Array, poses: Array,
                    present: Array, background: Array) -> Array:
  """θ from θ̂: the stack chain (relate_static_order), Γ (use_interaction) or θ̂ itself.

  Creates 'chain' or 'interaction' in the calling module. appearance z (B, K, Nf) (ones
  with fixed_objects), poses θ̂ (B, K, 2), present (B, K), background z0 (B, Nb). Returns
  θ (B, K, 2), absent slots at absent_pose.
  """
  c = config
  if c.name == config_lib.ORDERED:
    return StackChain(c, name='chain')(appearance, poses, present, background)
  if c.use_interaction:
    return Interaction(c, name='interaction')(appearance, poses, present, background)
  return jnp.where(present[..., None] > 0, poses, c.absent_pose)


def composition_masks(config: ml_collections.FrozenConfigDict,
                      compositions: Array) -> tuple[Array, Array]:
  """(takes_part (B, F, K), shown (B, F, K + 1)) of component renders.

  compositions (B, F, K + 1) bool: the objects and (last entry) the background drawn in
  each of F frames. A left-out object is removed as the scene removes an absent one: with
  the reference's clipped max (clip_background, pooling 'max') its zero canvas still takes
  part, clipping W_0 at 0 as every slot does in the scene; otherwise it does not take part.
  """
  k = compositions.shape[-1] - 1
  if config.clip_background and config.pooling == 'max':
    takes_part = jnp.ones(compositions.shape[:-1] + (k,), bool)
  else:
    takes_part = compositions[..., :k]
  return takes_part, compositions


def scene_constants(module: nn.Module, config: ml_collections.FrozenConfigDict,
                    num_objects: int) -> tuple[Array, Array]:
  """The learned constants of `module`: 'background_constant' T_b (1, S0, S0, C) and
  'object_constant' T_f (1, or K with fixed_objects, H', H', C_f)."""
  c = config
  s0 = scene_size(c)
  t_b = module.param('background_constant', layers.constant_init, (1, s0, s0, c.scene_channels))
  t_f = module.param('object_constant', layers.constant_init,
                     (num_objects if c.fixed_objects else 1, c.obj_size, c.obj_size,
                      c.obj_channels))
  return t_b, t_f


class RelateGenerator(nn.Module):
  """Ψb, Ψf, T_b, T_f, Γ, sc and G.

  config: config.model (FrozenConfigDict). image_size: output side S; None reads
  config.image_size when that field exists, else the reference's 128.

  Parameters: 'background_constant' T_b (1, S0, S0, scene_channels); 'object_constant' T_f
  (1, or K with fixed_objects, H', H', obj_channels); 'background_decoder' Ψb;
  'object_decoder' Ψf; 'scale' sc (Linear(Nb+Nf+2 → h), LReLU, Linear(h → h), LReLU,
  Linear(h → 1), Tanh; always present, as in the reference state dict); 'interaction' Γ
  (relate_static with use_interaction) or 'chain' (relate_static_order); 'image_decoder' G.
  Initialise without `poses` so Γ's parameters are created. With
  mutable=['intermediates'] the scene tensor W and the background canvas W_0 (B, S0, S0, C)
  are returned under intermediates/scene and intermediates/background.
  """
  config: ml_collections.FrozenConfigDict
  image_size: int | None = None

  def resolved_image_size(self) -> int:
    if self.image_size is not None:
      return self.image_size
    if 'image_size' in self.config:
      return self.config.image_size
    return REFERENCE_IMAGE_SIZE

  @nn.compact
  def __call__(self, latents: Latents, *, render_single: bool = True,
               poses: Array | None = None,
               compositions: Array | None = None) -> tuple[Array, dict]:
    """Renders B scenes.

    Returns images (B, S, S, 3) in [-1, 1] and aux with 'poses' θ (B, K, 2),
    'initial_poses' θ̂ (B, K, 2), 'scales' s (B, K) and, if render_single, 'single'
    (B, S, S, 3), the render of [selected object, background]. `poses` (B, K, 2) skips Γ
    and renders exactly these final poses. `compositions` (B, F, K + 1) bool adds F
    component renders of each scene at the same poses (see `composition_masks`: e.g. the
    background alone, each object alone, or with the background; paper Fig. 4), decoded in
    the same G batch and returned as aux['compositions'] (B, F, S, S, 3).
    """
    c = self.config
    b, k, _ = latents.appearance.shape
    t_b, t_f = scene_constants(self, c, k)
    z0, present = latents.background, latents.present
    # Balls-in-Bowl setting: one constant per slot and a constant style vector.
    z = jnp.ones_like(latents.appearance) if c.fixed_objects else latents.appearance

    theta = poses if poses is not None else corrected_poses(c, z, latents.poses, present, z0)
    scales = object_scales(c, z0, z, theta)
    windows = object_windows(c, t_f, z)
    background = BackgroundDecoder(c, name='background_decoder')(t_b, z0)
    # Frame 0: the scene; frame 1 (render_single): [selected object, background] only.
    takes_part = [jnp.ones((b, k), bool)]
    if render_single:
      takes_part.append(jnp.arange(k)[None, :] == latents.select[:, None])
    takes_part, shown = jnp.stack(takes_part, 1), None
    if compositions is not None:
      extra, shown = composition_masks(c, compositions)
      shown = jnp.concatenate([jnp.ones(takes_part.shape[:2] + (k + 1,), bool), shown], 1)
      takes_part = jnp.concatenate([takes_part, extra], 1)
    f = takes_part.shape[1]
    images, scenes = render_frames(
        self, c, self.resolved_image_size(), windows, background,
        jnp.repeat(scales[:, None], f, 1), jnp.repeat(theta[:, None], f, 1), present,
        takes_part, shown=shown)
    # Available with mutable=['intermediates'] (inspection and visualisation tools).
    self.sow('intermediates', 'background', background)
    self.sow('intermediates', 'scene', scenes)
    aux = {'poses': theta, 'initial_poses': latents.poses, 'scales': scales}
    if render_single:
      aux['single'] = images[:, 1]
    if compositions is not None:
      aux['compositions'] = images[:, f - compositions.shape[1]:]
    return images[:, 0], aux
