"""A physically based active-stereo Intel RealSense D435 for the simulated world.

Depth comes out of the same chain as on the device, so its errors are emergent rather than drawn
from a noise model: PyBullet renders the left and right IR views; a fixed pseudo-random dot pattern,
projected from the left imager, lights every surface point according to where that point falls in
the projector's image (so the texture is the same on the surface in both views), with 1/r² falloff
and Lambert's cosine, on top of ambient light times the body's albedo; the images get shot and read
noise and 8-bit quantisation; OpenCV's semi-global matcher finds the disparity d (its left-right
and uniqueness checks and speckle filter reject doubtful matches) and z = f·B/d, quantised to the
SDK's depth units, 0 where invalid.

Modelling choices:

- The IR imagers share the simulated camera's intrinsics (640×480, fx = fy = 540: ~61° HFOV, not the
  D435's ~87° at 640×480), so the left IR view is pixel-for-pixel the depth the rest of the
  simulator renders (``clean_depth_m``) and the benchmark protocol's camera stays as published.
  Depth noise follows σ_z = z²·σ_d / (f·B) with this f, i.e. ~1.6× lower than a real D435's at the
  same resolution.
- The emitter sits at the left imager. On the device it is between the imagers, but anywhere in
  between, the projector shadow the left imager sees falls inside the band the right imager cannot
  see, so the same pixels can match; co-locating saves a shadow-map render per frame.
- Materials (``MATERIALS``) change the IR each pixel receives: ``dark`` reflects little (low SNR:
  holes and noise), ``specular`` reflects the emitter and the room's lamps as highlights that differ
  between the views (saturated holes, wrong matches), ``transparent`` lets the IR through to the
  surface behind, slightly displaced by refraction, so depth reads the background.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..camera.frame import DepthFrame
from ..camera.intrinsics import SIM_CAMERA, CameraIntrinsics
from ..geometry import invert, is_rigid_transform, make_transform
from .camera import SimCamera


@dataclass(frozen=True)
class Material:
    """How a body returns IR. ``diffuse`` scales its colour's albedo; ``specular`` is the mirror
    reflectance for highlights of exponent ``shininess``; ``transmittance`` is the fraction of the
    light that passes through to what is behind, seen displaced by ``refraction_px`` times the sine
    of the surface's tilt away from the ray."""

    diffuse: float = 1.0
    specular: float = 0.0
    shininess: float = 1.0
    transmittance: float = 0.0
    refraction_px: float = 0.0


MATERIALS: dict[str, Material] = {
    "diffuse": Material(),
    "dark": Material(diffuse=0.05, specular=0.02, shininess=20.0),  # black plastic: a few % of NIR returns
    "specular": Material(diffuse=0.1, specular=1.0, shininess=60.0),  # polished metal
    "transparent": Material(diffuse=0.03, specular=0.5, shininess=300.0, transmittance=0.9,
                            refraction_px=6.0),  # clear plastic or glass
}


@dataclass(frozen=True)
class SGBMParams:
    """``cv2.StereoSGBM`` settings; P1 and P2 as OpenCV recommends for one channel (8·n², 32·n²)."""

    num_disparities: int = 128  # with f·B = 27 px·m: nearest depth f·B / 127 ≈ 0.21 m
    block_size: int = 7
    uniqueness_ratio: int = 10  # percent the best match must beat the second best by
    disp12_max_diff: int = 1  # left-right consistency, pixels
    speckle_window_size: int = 100  # pixels; smaller isolated disparity blobs become invalid
    speckle_range: int = 2  # pixels of disparity spread within a blob
    pre_filter_cap: int = 31
    three_way: bool = True  # MODE_SGBM_3WAY: as accurate as MODE_SGBM on pile scenes, ~1.3x faster

    @property
    def p1(self) -> int:
        return 8 * self.block_size**2

    @property
    def p2(self) -> int:
        return 32 * self.block_size**2


@dataclass(frozen=True)
class D435Config:
    """The stereo head, its emitter and sensor, the matcher and the output depth stream.

    Intensities are fractions of the IR sensor's full scale (1.0 = 255 in the 8-bit image).
    """

    intrinsics: CameraIntrinsics = SIM_CAMERA  # of both (rectified) IR imagers, see the module doc
    baseline_m: float = 0.050
    dot_density: float = 0.1  # emitter dots per projector pixel (~5 per 7x7 matching block)
    dot_sigma_px: float = 0.7  # Gaussian radius of one dot in the image
    projector_irradiance_1m: float = 0.3  # a dot's peak on a white surface facing the emitter at 1 m
    ambient: float = 0.08  # room light on a white surface
    lamp_count: int = 16  # room lamps and windows mirrored by specular surfaces (upper hemisphere)
    lamp_radiance: float = 3.0  # saturates a mirror highlight
    full_well_e: float = 5000.0  # electrons at full scale: shot noise
    read_noise: float = 0.004  # ~1 DN
    sgbm: SGBMParams = field(default_factory=SGBMParams)
    # Like the D4 ASIC's texture threshold (OpenCV's SGBM has none): a block whose left IR varies less
    # than this (standard deviation, DN) is invalid rather than matched on noise.
    min_texture_dn: float = 2.0
    depth_unit_m: float = 0.001  # the D400 default z16 unit
    min_depth_m: float = 0.1
    max_depth_m: float = 2.0  # also the render's far plane: nothing beyond returns IR
    pattern_seed: int = 0  # the emitter's pattern and the room's lamps are fixed per device

    def __post_init__(self):
        if self.baseline_m <= 0.0:
            raise ValueError(f"baseline_m must be positive, got {self.baseline_m}")
        if not 0.0 < self.dot_density <= 1.0 or self.dot_sigma_px <= 0.0:
            raise ValueError(f"need 0 < dot_density <= 1 and dot_sigma_px > 0, got "
                             f"{self.dot_density}, {self.dot_sigma_px}")
        if self.sgbm.num_disparities <= 0 or self.sgbm.num_disparities % 16:
            raise ValueError(f"SGBM num_disparities must be a positive multiple of 16, got "
                             f"{self.sgbm.num_disparities}")
        if self.sgbm.block_size < 1 or self.sgbm.block_size % 2 == 0:
            raise ValueError(f"SGBM block_size must be odd and positive, got {self.sgbm.block_size}")
        if self.depth_unit_m <= 0.0:
            raise ValueError(f"depth_unit_m must be positive, got {self.depth_unit_m}")
        if not 0.0 < self.min_depth_m < self.max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {self.min_depth_m}, {self.max_depth_m}")
        if self.max_depth_m / self.depth_unit_m > np.iinfo(np.uint16).max:
            raise ValueError(f"max_depth_m {self.max_depth_m} does not fit z16 in units of {self.depth_unit_m} m")

    @property
    def focal_baseline_px_m(self) -> float:
        """f·B: disparity in pixels times depth in metres."""
        return self.intrinsics.fx * self.baseline_m


@dataclass(frozen=True)
class StereoFrame:
    """One simulated D435 frame, all images in the left IR imager's pixels (the depth origin)."""

    depth_m: np.ndarray  # (H, W) float32, whole depth units, 0 = invalid as the SDK reports
    ir_left: np.ndarray  # (H, W) uint8, emitter on
    ir_right: np.ndarray  # (H, W) uint8
    clean_depth_m: np.ndarray  # (H, W) float32, the renderer's exact depth, 0 beyond range
    body_ids: np.ndarray  # (H, W) int, the PyBullet body each pixel sees, -1 none
    intrinsics: CameraIntrinsics
    T_workspace_camera: np.ndarray
    depth_unit_m: float

    @property
    def valid_mask(self) -> np.ndarray:
        return self.depth_m > 0.0

    def to_sdk_units(self) -> np.ndarray:
        """The depth as the SDK's z16 image: uint16 depth units, 0 = invalid."""
        return np.round(self.depth_m / self.depth_unit_m).astype(np.uint16)

    def to_depth_frame(self, frame_id: str = "sim_camera_optical_frame", stamp: float = 0.0) -> DepthFrame:
        return DepthFrame(self.depth_m, self.intrinsics, frame_id, stamp)


@dataclass(frozen=True)
class _View:
    """What one imager sees: depth (m, 0 = nothing), albedo (0..1) and body id per pixel."""

    depth_m: np.ndarray
    albedo: np.ndarray
    body_ids: np.ndarray
    T_workspace_view: np.ndarray


class D435Simulator:
    """Renders simulated D435 depth of a PyBullet world: ``D435Simulator(world.p).render(T)``.

    ``seed`` seeds the sensor noise; the emitter pattern is the config's.
    """

    def __init__(self, client, config: D435Config = D435Config(), seed: int = 0):
        import cv2

        self.client = client
        self.config = config
        self.rng = np.random.default_rng(seed)
        K = config.intrinsics
        self._projection = SimCamera._gl_projection(K, config.min_depth_m, config.max_depth_m).flatten(order="F")
        device_rng = np.random.default_rng(config.pattern_seed)
        # The emitter's field of view is wider than the imagers': the right imager's extra columns stay lit.
        self._pattern_margin_px = config.sgbm.num_disparities
        self._pattern = _dot_pattern((K.height, K.width + 2 * self._pattern_margin_px),
                                     config.dot_density, config.dot_sigma_px, device_rng)
        azimuth = device_rng.uniform(0.0, 2.0 * np.pi, config.lamp_count)
        elevation = device_rng.uniform(np.deg2rad(25.0), np.deg2rad(75.0), config.lamp_count)
        self._lamps_workspace = np.column_stack([np.cos(elevation) * np.cos(azimuth),
                                                 np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        s = config.sgbm
        self._matcher = cv2.StereoSGBM_create(
            minDisparity=0, numDisparities=s.num_disparities, blockSize=s.block_size, P1=s.p1, P2=s.p2,
            disp12MaxDiff=s.disp12_max_diff, preFilterCap=s.pre_filter_cap,
            uniquenessRatio=s.uniqueness_ratio, speckleWindowSize=s.speckle_window_size,
            speckleRange=s.speckle_range,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY if s.three_way else cv2.STEREO_SGBM_MODE_SGBM,
        )

    def render(self, T_workspace_camera: np.ndarray, materials: Mapping[int, str] | None = None) -> StereoFrame:
        """One frame from the left IR imager at ``T_workspace_camera`` (optical frame, z forward).

        ``materials`` maps PyBullet body ids to names in ``MATERIALS``; other bodies are ``diffuse``.
        It is passed per frame because PyBullet reuses the ids of removed bodies.
        """
        T_workspace_camera = np.asarray(T_workspace_camera, dtype=float)
        if not is_rigid_transform(T_workspace_camera):
            raise ValueError(f"T_workspace_camera must be a 4x4 rigid transform (orthonormal rotation, "
                             f"last row 0 0 0 1), got\n{T_workspace_camera}")
        materials = self._checked(materials or {})
        cfg = self.config
        T_workspace_right = T_workspace_camera @ make_transform(translation=(cfg.baseline_m, 0.0, 0.0))
        left, right = self._render(T_workspace_camera), self._render(T_workspace_right)
        seen = set(np.unique(left.body_ids)) | set(np.unique(right.body_ids))
        transparent = [b for b, m in materials.items() if m.transmittance > 0.0 and b in seen]
        if transparent:
            with _HiddenBodies(self.client, transparent):
                behind_left, behind_right = self._render(T_workspace_camera), self._render(T_workspace_right)
            # The emitter's light passes through transparent bodies: only what is behind casts shadows.
            shadow_depth_m = behind_left.depth_m
            behind = (self._irradiance(behind_left, 0.0, shadow_depth_m, materials),
                      self._irradiance(behind_right, cfg.baseline_m, shadow_depth_m, materials))
        else:
            shadow_depth_m, behind = left.depth_m, (None, None)
        ir_left = self._exposed(self._irradiance(left, 0.0, shadow_depth_m, materials, behind[0]))
        ir_right = self._exposed(self._irradiance(right, cfg.baseline_m, shadow_depth_m, materials, behind[1]))
        return StereoFrame(self._depth(ir_left, ir_right), ir_left, ir_right, left.depth_m.astype(np.float32),
                           left.body_ids, cfg.intrinsics, T_workspace_camera, cfg.depth_unit_m)

    def _checked(self, materials: Mapping[int, str]) -> dict[int, Material]:
        import pybullet

        checked = {}
        for body, name in materials.items():
            if name not in MATERIALS:
                raise ValueError(f"unknown material {name!r} for body {body}: choose one of {sorted(MATERIALS)}")
            try:
                self.client.getBodyInfo(int(body))
            except pybullet.error as exc:
                raise ValueError(f"no body {body} in the PyBullet world (materials: {dict(materials)})") from exc
            checked[int(body)] = MATERIALS[name]
        return checked

    def _render(self, T_workspace_view: np.ndarray) -> _View:
        import pybullet

        cfg, K = self.config, self.config.intrinsics
        view = invert(T_workspace_view)
        view[2, :] *= -1  # OpenCV optical frame (z forward) to OpenGL (z backward)
        # Ambient light only: the colour buffer is then the bodies' flat albedo; shading is ours.
        _, _, rgba, z_buffer, seg = self.client.getCameraImage(
            width=K.width, height=K.height, viewMatrix=view.flatten(order="F"),
            projectionMatrix=self._projection, renderer=pybullet.ER_TINY_RENDERER,
            lightAmbientCoeff=1.0, lightDiffuseCoeff=0.0, lightSpecularCoeff=0.0, shadow=0,
        )
        z_buffer = np.asarray(z_buffer, dtype=np.float64).reshape(K.height, K.width)
        near, far = cfg.min_depth_m, cfg.max_depth_m
        depth = far * near / (far - (far - near) * z_buffer)
        empty = (depth <= near) | (depth >= far * (1.0 - 1e-4))
        depth[empty] = 0.0
        body_ids = np.asarray(seg, dtype=np.int64).reshape(K.height, K.width)
        body_ids[empty] = -1
        rgb = np.asarray(rgba, dtype=np.float64).reshape(K.height, K.width, 4)[..., :3]
        albedo = np.where(empty, 0.0, rgb @ np.array([0.299, 0.587, 0.114]) / 255.0)
        return _View(depth, albedo, body_ids, T_workspace_view)

    def _irradiance(self, view: _View, x_view_m: float, shadow_depth_m: np.ndarray,
                    materials: dict[int, Material], behind: np.ndarray | None = None) -> np.ndarray:
        """IR reaching each pixel of ``view`` (full-scale units), the view ``x_view_m`` to the right of
        the emitter (= the left imager); ``behind`` is what transparent bodies let through."""
        import cv2

        cfg, K = self.config, self.config.intrinsics
        z = view.depth_m
        hit = z > 0.0
        v, u = np.mgrid[0:K.height, 0:K.width].astype(np.float64)
        points_view = np.dstack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z])
        normals_view = _normals(points_view)
        # The emitter is the left imager, x_view_m to the left of this view, looking the same way.
        to_emitter = np.array([-x_view_m, 0.0, 0.0]) - points_view
        range_m = np.linalg.norm(to_emitter, axis=2)
        to_emitter /= np.maximum(range_m, 1e-9)[..., None]
        u_emitter = np.where(hit, K.fx * (points_view[..., 0] + x_view_m) / np.maximum(z, 1e-9) + K.cx, -1e4)
        map_u, map_v = u_emitter.astype(np.float32), v.astype(np.float32)
        dots = cv2.remap(self._pattern, map_u + self._pattern_margin_px, map_v, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        # Shadow map: lit unless the emitter's view of the same ray ends in front of this point.
        occluder_m = cv2.remap(shadow_depth_m.astype(np.float32), map_u, map_v, cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        lit = (occluder_m == 0.0) | (z <= occluder_m * 1.01 + 0.002)
        cos_emitter = np.clip(np.sum(normals_view * to_emitter, axis=2), 0.0, None)
        emitter = np.where(hit & lit, cfg.projector_irradiance_1m / np.maximum(range_m, 1e-3) ** 2, 0.0)

        diffuse, specular, shininess, transmittance, refraction_px = _material_maps(view.body_ids, materials)
        irradiance = view.albedo * diffuse * (cfg.ambient + emitter * dots * cos_emitter)
        glossy = hit & (specular > 0.0)
        if glossy.any():
            n, e, d = normals_view[glossy], to_emitter[glossy], points_view[glossy]
            d = d / np.linalg.norm(d, axis=1, keepdims=True)  # from the imager to the point
            half = e - d
            half /= np.linalg.norm(half, axis=1, keepdims=True)
            k = shininess[glossy]
            glint = emitter[glossy] * np.clip(np.sum(n * half, axis=1), 0.0, None) ** k
            mirrored = d - 2.0 * np.sum(n * d, axis=1, keepdims=True) * n
            mirrored_workspace = mirrored @ view.T_workspace_view[:3, :3].T
            lamps = np.clip(mirrored_workspace @ self._lamps_workspace.T, 0.0, None) ** k[:, None]
            irradiance[glossy] += specular[glossy] * (glint + cfg.lamp_radiance * lamps.sum(axis=1))
        if behind is not None:
            # Refraction displaces what is behind along the surface's tilt away from the ray.
            rays = points_view / np.maximum(np.linalg.norm(points_view, axis=2, keepdims=True), 1e-9)
            tilt = normals_view - np.sum(normals_view * rays, axis=2, keepdims=True) * rays
            shift_px = tilt[..., :2] * refraction_px[..., None]
            seen_through = cv2.remap(behind.astype(np.float32), (u + shift_px[..., 0]).astype(np.float32),
                                     (v + shift_px[..., 1]).astype(np.float32), cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            irradiance += transmittance * seen_through
        return irradiance

    def _exposed(self, irradiance: np.ndarray) -> np.ndarray:
        """The 8-bit IR image: shot and read noise, then saturation at full scale."""
        cfg = self.config
        sigma = np.sqrt(np.clip(irradiance, 0.0, None) / cfg.full_well_e + cfg.read_noise**2)
        noisy = irradiance + sigma * self.rng.standard_normal(irradiance.shape)
        return np.clip(np.round(255.0 * noisy), 0, 255).astype(np.uint8)

    def _depth(self, ir_left: np.ndarray, ir_right: np.ndarray) -> np.ndarray:
        import cv2

        cfg = self.config
        # OpenCV leaves the first num_disparities columns invalid; padding both images with black
        # lets every pixel whose match lies inside the right image find it, as the D435 does.
        pad = cfg.sgbm.num_disparities
        padded = [np.pad(image, ((0, 0), (pad, 0))) for image in (ir_left, ir_right)]
        disparity_px = self._matcher.compute(*padded)[:, pad:].astype(np.float64) / 16.0  # fixed point
        with np.errstate(divide="ignore"):
            depth = np.where(disparity_px > 0.0, cfg.focal_baseline_px_m / disparity_px, 0.0)
        depth = np.round(depth / cfg.depth_unit_m) * cfg.depth_unit_m
        block = (cfg.sgbm.block_size, cfg.sgbm.block_size)
        intensity = ir_left.astype(np.float32)
        variance = cv2.boxFilter(intensity**2, -1, block) - cv2.boxFilter(intensity, -1, block) ** 2
        textured = variance >= cfg.min_texture_dn**2
        depth[~textured | (depth < cfg.min_depth_m) | (depth > cfg.max_depth_m)] = 0.0
        return depth.astype(np.float32)


class _HiddenBodies:
    """Makes bodies invisible to the renderer (alpha 0) and restores their colours on exit; physics
    is untouched. Each link is restored to one colour, so links whose shapes differ are refused."""

    def __init__(self, client, bodies: list[int]):
        self.client = client
        self.colours: dict[tuple[int, int], tuple[float, ...]] = {}
        for body in bodies:
            for shape in client.getVisualShapeData(body):
                key, rgba = (body, shape[1]), tuple(shape[7])
                if self.colours.setdefault(key, rgba) != rgba:
                    raise ValueError(f"body {body} link {shape[1]} has visual shapes of different colours; "
                                     "a transparent body needs one colour per link to be restored after hiding")

    def __enter__(self):
        for (body, link), rgba in self.colours.items():
            self.client.changeVisualShape(body, link, rgbaColor=(*rgba[:3], 0.0))

    def __exit__(self, *exc):
        for (body, link), rgba in self.colours.items():
            self.client.changeVisualShape(body, link, rgbaColor=rgba)


def _material_maps(body_ids: np.ndarray, materials: dict[int, Material]) -> tuple[np.ndarray, ...]:
    """Per-pixel ``Material`` fields, ``diffuse`` where no material is given."""
    names = ("diffuse", "specular", "shininess", "transmittance", "refraction_px")
    maps = [np.full(body_ids.shape, getattr(MATERIALS["diffuse"], name)) for name in names]
    for body, material in materials.items():
        mask = body_ids == body
        for values, name in zip(maps, names):
            values[mask] = getattr(material, name)
    return tuple(maps)


def _dot_pattern(shape: tuple[int, int], density: float, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Random dots of peak 0.5..1 (overlaps add up), band-limited by a Gaussian of ``sigma_px``."""
    import cv2

    count = rng.poisson(density * shape[0] * shape[1])
    impulses = np.zeros(shape, np.float32)
    np.add.at(impulses, (rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)),
              rng.uniform(0.5, 1.0, count).astype(np.float32))
    return cv2.GaussianBlur(impulses, (0, 0), sigma_px) * np.float32(2.0 * np.pi * sigma_px**2)


def _normals(points: np.ndarray) -> np.ndarray:
    """Unit surface normals of an organised (H, W, 3) cloud, facing the imager; 0 where no surface."""
    normals = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    length = np.linalg.norm(normals, axis=2, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0.0)
    facing = np.sign(np.sum(normals * points, axis=2, keepdims=True))
    return np.where(points[..., 2:] > 0.0, -facing * normals, 0.0)
