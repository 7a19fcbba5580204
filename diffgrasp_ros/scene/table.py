"""The workspace from the depth itself: fit the table, put the workspace on it over the objects.

A real camera comes without a pose in any robot frame. The table is the one thing every tabletop view
shares, so its plane gives the workspace's z axis and height; x is the optical axis projected onto it
(the direction the camera looks across the table), and the workspace is centred over the objects on the
table (or over a mask, image region or pixel a user gives). ``check_camera_pose`` uses the same fit to
catch a given extrinsic that puts the table in the wrong place.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..camera.frame import DepthError, DepthFrame
from ..geometry import invert, transform_points
from .workspace import STANDARD_WORKSPACE, TableArea


class TableNotFoundError(ValueError):
    """No table plane the workspace could stand on was found in the depth."""


@dataclass(frozen=True)
class TableFitConfig:
    max_points: int = 60_000  # valid pixels sampled for the fit
    inlier_distance_m: float = 0.012  # D4xx depth noise at ~1 m is several mm
    ransac_iterations: int = 1000
    candidate_planes: int = 3  # the largest planes tried, in order, until one can be a table
    min_table_share: float = 0.15  # of the valid depth
    max_incidence_deg: float = 80.0  # optical axis vs table normal: beyond this the camera looks along it
    object_min_height_m: float = 0.012  # above the plane: clear of its noise
    search_height_m: float = 0.40  # points up to this far above the table are looked at
    max_object_height_m: float = 0.35  # a cluster reaching higher is no graspable object
    max_object_span_m: float = 0.70
    object_on_table_m: float = 0.04  # object points must stand over the table's inliers (not the floor)
    cluster_eps_m: float = 0.02
    cluster_min_points: int = 30
    margin_m: float = 0.04  # around the objects' footprint in an automatic size


@dataclass
class TablePlane:
    """``normal · p + offset = 0`` in the camera frame; the normal points to the camera's side (up)."""

    normal: np.ndarray
    offset_m: float
    inlier_share: float
    residual_m: float  # RMS distance of the inliers
    inliers: np.ndarray  # (N, 3) camera-frame points on the table

    def height_m(self, points: np.ndarray) -> np.ndarray:
        return points @ self.normal + self.offset_m


@dataclass
class WorkspaceEstimate:
    """Where the workspace is (``T_workspace_camera``) and how much to trust it."""

    T_workspace_camera: np.ndarray
    area: TableArea
    table_inlier_share: float
    table_residual_m: float
    object_points: int
    object_extent_m: tuple[float, float, float]  # the objects' bounding box along workspace x, y, z
    object_share_inside: float  # of the object points, inside the workspace
    warnings: list[str] = field(default_factory=list)

    def diagnostics(self) -> dict:
        return {
            "table_inlier_share": round(self.table_inlier_share, 4),
            "table_residual_m": round(self.table_residual_m, 5),
            "object_points": self.object_points,
            "object_extent_m": [round(v, 4) for v in self.object_extent_m],
            "object_share_inside": round(self.object_share_inside, 4),
            "warnings": list(self.warnings),
        }


def _o3d():
    import open3d as o3d

    return o3d


def _sample_points(frames: Sequence[DepthFrame], max_points: int,
                   pixel_mask: np.ndarray | None = None) -> np.ndarray:
    """Camera-frame points of a static camera's frames: the per-pixel median of the valid depths."""
    return _sample_grid(frames, max_points, pixel_mask)[0]


def _sample_grid(frames: Sequence[DepthFrame], max_points: int, pixel_mask: np.ndarray | None = None):
    """``_sample_points`` plus the points' (row, column) on the sampling grid and the grid's shape."""
    depth = _median_depth(frames)
    if pixel_mask is not None:
        depth = np.where(pixel_mask, depth, 0.0)
    stride = max(1, int(np.sqrt(np.count_nonzero(depth) / max_points)))
    sampled = depth[::stride, ::stride]
    rows, cols = np.nonzero(sampled)
    K = frames[0].intrinsics
    z = sampled[rows, cols].astype(np.float64)
    points = np.column_stack([(cols * stride - K.cx) * z / K.fx, (rows * stride - K.cy) * z / K.fy, z])
    return points, rows, cols, sampled.shape


def _largest_patch(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Of the given grid cells, those in the largest 8-connected patch (after closing one-cell gaps)."""
    from scipy import ndimage

    grid = np.zeros(shape, bool)
    grid[rows, cols] = True
    labels, count = ndimage.label(ndimage.binary_closing(grid), structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros(len(rows), bool)
    sizes = np.bincount(labels[rows, cols], minlength=count + 1)
    sizes[0] = 0
    return labels[rows, cols] == np.argmax(sizes)


def _median_depth(frames: Sequence[DepthFrame]) -> np.ndarray:
    if len(frames) == 1:
        return frames[0].depth_m
    shape = frames[0].depth_m.shape
    if any(f.depth_m.shape != shape or f.intrinsics != frames[0].intrinsics for f in frames):
        raise ValueError("workspace estimation takes frames of one static camera: their sizes or intrinsics differ")
    stack = np.stack([np.where(f.valid_mask, f.depth_m, np.nan) for f in frames])
    with warnings.catch_warnings():  # pixels invalid in every frame: all-NaN, 0 below
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(stack, axis=0)
    return np.nan_to_num(median, nan=0.0)


def _plane_candidates(points: np.ndarray, cfg: TableFitConfig):
    """The largest planes (normal oriented to the camera, share of ``points``, inlier mask), largest first."""
    o3d = _o3d()
    o3d.utility.random.seed(0)
    remaining = np.arange(len(points))
    for _ in range(cfg.candidate_planes):
        if len(remaining) < 3:
            return
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[remaining]))
        model, inliers = cloud.segment_plane(cfg.inlier_distance_m, 3, cfg.ransac_iterations)
        if len(inliers) < 3:
            return
        inliers = remaining[np.asarray(inliers)]
        normal, offset = np.asarray(model[:3], float), float(model[3])
        scale = np.linalg.norm(normal)
        normal, offset = normal / scale, offset / scale
        if offset < 0:  # the camera (the origin) on the positive side
            normal, offset = -normal, -offset
        yield normal, offset, len(inliers) / len(points), inliers
        remaining = np.setdiff1d(remaining, inliers, assume_unique=True)


def _refine(points: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares plane through the inliers, refitted once without the farthest (the feet of objects
    standing on the table sit inside the RANSAC band): normal (same side), offset, RMS residual."""
    for _ in range(2):
        centroid = points.mean(axis=0)
        _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
        normal = vt[2] if vt[2] @ normal > 0 else -vt[2]
        offset = -float(normal @ centroid)
        distance = points @ normal + offset
        rms = float(np.sqrt(np.mean(distance ** 2)))
        points = points[np.abs(distance) <= max(2.5 * rms, 0.002)]
    return normal, offset, rms


def fit_table(frames: Sequence[DepthFrame] | DepthFrame, config: TableFitConfig | None = None) -> TablePlane:
    """The table plane in the camera frame; ``TableNotFoundError`` saying why when there is none."""
    cfg = config or TableFitConfig()
    frames = [frames] if isinstance(frames, DepthFrame) else list(frames)
    if not frames:
        raise DepthError("no depth frames given")
    points, rows, cols, grid_shape = _sample_grid(frames, cfg.max_points)
    if len(points) < 100:
        raise DepthError(f"only {len(points)} valid depth pixels: too few to find a table")
    tables, rejected = [], []
    for normal, offset, share, inliers in _plane_candidates(points, cfg):
        if share < cfg.min_table_share:
            rejected.append(f"the largest plane left covers only {share:.0%} of the valid depth "
                            f"(a table needs {cfg.min_table_share:.0%})")
            break
        incidence = np.degrees(np.arccos(np.clip(-normal[2], -1.0, 1.0)))
        if incidence > cfg.max_incidence_deg:
            rejected.append(f"a plane covering {share:.0%} is seen {incidence:.0f} deg off its normal "
                            f"(more than {cfg.max_incidence_deg:.0f}): the camera looks along or away from it")
            continue
        if normal[1] > 0.5:
            rejected.append(f"a plane covering {share:.0%} faces down in the image (a ceiling, or the "
                            "camera is upside down)")
            continue
        # A table is one surface in the image; a plane cutting a curved scene leaves scattered strips.
        inliers = inliers[_largest_patch(rows[inliers], cols[inliers], grid_shape)]
        if len(inliers) < cfg.min_table_share * len(points):
            rejected.append(f"a plane covering {share:.0%} falls apart into patches (the largest "
                            f"{len(inliers) / len(points):.0%}): no flat table")
            continue
        normal, offset, residual = _refine(points[inliers], normal)
        tables.append(TablePlane(normal, offset, len(inliers) / len(points), residual, points[inliers]))
    if tables:
        # The floor can outsize the table in view: of the planes parallel to the largest, not much
        # smaller and not farther (a table over a floor, not a box top on the table), the table is the
        # one objects stand on.
        largest = tables[0]
        rivals = [t for t in tables if t.normal @ largest.normal > np.cos(np.radians(10.0))
                  and t.inlier_share >= 0.4 * largest.inlier_share and t.offset_m <= largest.offset_m]
        if len(rivals) == 1:
            return largest
        return max(rivals, key=lambda t: (len(_object_points(points, t, cfg)), t.inlier_share))
    reason = "; ".join(rejected) or "no plane found"
    raise TableNotFoundError(f"no table found in the depth: {reason}. Point the camera down at the table, "
                             "with the table filling a good part of the view")


def _table_axes(plane: TablePlane) -> np.ndarray:
    """Columns x, y, z of the workspace in the camera frame: z up the table normal, x the optical axis
    projected onto the table (image-up when the camera looks straight down)."""
    z = plane.normal
    forward = np.array([0.0, 0.0, 1.0]) - z[2] * z
    if np.linalg.norm(forward) < 0.1:
        up_in_image = np.array([0.0, -1.0, 0.0])
        forward = up_in_image - (up_in_image @ z) * z
    x = forward / np.linalg.norm(forward)
    return np.column_stack([x, np.cross(z, x), z])


def _object_points(points: np.ndarray, plane: TablePlane, cfg: TableFitConfig) -> np.ndarray:
    """Camera-frame points standing on the table: above it, over its inliers, in clusters (not specks)."""
    from scipy.spatial import cKDTree

    height = plane.height_m(points)
    above = points[(height > cfg.object_min_height_m) & (height < cfg.search_height_m)]
    if len(above) == 0:
        return above
    # Over the table: the foot of each point on the plane lies near a table inlier.
    feet = above - plane.height_m(above)[:, None] * plane.normal
    stride = max(1, len(plane.inliers) // 20_000)
    distance, _ = cKDTree(plane.inliers[::stride]).query(feet, distance_upper_bound=cfg.object_on_table_m)
    above = above[np.isfinite(distance)]
    if len(above) < cfg.cluster_min_points:
        return above[:0]
    o3d = _o3d()
    labels = np.asarray(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(above)).cluster_dbscan(
        cfg.cluster_eps_m, cfg.cluster_min_points))
    # Clusters too tall or too long for a hand are walls, furniture or people at the table's edge.
    keep = np.zeros(len(above), bool)
    heights = plane.height_m(above)
    for label in range(labels.max() + 1):
        member = labels == label
        feet_diagonal = np.linalg.norm(np.ptp(feet[np.isfinite(distance)][member], axis=0))
        if heights[member].max() < cfg.max_object_height_m and feet_diagonal < cfg.max_object_span_m:
            keep |= member
    return above[keep]


def pixel_region_mask(shape: tuple[int, int], mask: np.ndarray | None = None,
                      region: tuple[int, int, int, int] | None = None,
                      pixel: tuple[int, int] | None = None, pixel_radius_px: int = 15) -> np.ndarray | None:
    """One (H, W) bool mask from a mask image, an image region (u0, v0, u1, v1) or a pixel (u, v)."""
    given = [m for m in (mask, region, pixel) if m is not None]
    if len(given) > 1:
        raise ValueError("give at most one of a mask, an image region and a pixel")
    if not given:
        return None
    h, w = shape
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = mask.any(axis=2)
        if mask.shape != (h, w):
            raise ValueError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the depth is {w}x{h}")
        return mask.astype(bool)
    if region is not None:
        u0, v0, u1, v1 = (int(round(x)) for x in region)
        if not (0 <= u0 < u1 <= w and 0 <= v0 < v1 <= h):
            raise ValueError(f"image region {region} is not inside the {w}x{h} image (u0 < u1, v0 < v1)")
        out = np.zeros((h, w), bool)
        out[v0:v1, u0:u1] = True
        return out
    u, v = (int(round(x)) for x in pixel)
    if not (0 <= u < w and 0 <= v < h):
        raise ValueError(f"pixel ({u}, {v}) is outside the {w}x{h} image")
    vv, uu = np.ogrid[:h, :w]
    return (uu - u) ** 2 + (vv - v) ** 2 <= pixel_radius_px ** 2


def estimate_workspace(frames: Sequence[DepthFrame] | DepthFrame, size_m: tuple[float, float] | None = None,
                       mask: np.ndarray | None = None, region: tuple[int, int, int, int] | None = None,
                       pixel: tuple[int, int] | None = None, height_m: float = STANDARD_WORKSPACE.size_m,
                       table_height_m: float = STANDARD_WORKSPACE.table_height_m,
                       config: TableFitConfig | None = None) -> WorkspaceEstimate:
    """Fit the table in frames of one static camera and put the workspace on it.

    The workspace is ``size_m`` (x, y) — by default the objects' footprint plus a margin, at least the
    standard 0.30 m square — centred over the objects on the table, or over the objects selected by
    ``mask`` (H, W bool), ``region`` (u0, v0, u1, v1 pixels) or ``pixel`` (u, v). Its frame follows the
    standard convention: origin at a corner, z up, the table top at ``table_height_m``.
    """
    cfg = config or TableFitConfig()
    frames = [frames] if isinstance(frames, DepthFrame) else list(frames)
    if not frames:
        raise DepthError("no depth frames given")
    selection = pixel_region_mask(frames[0].depth_m.shape, mask, region, pixel)
    plane = fit_table(frames, cfg)
    R_camera_workspace = _table_axes(plane)
    warnings: list[str] = []

    objects = _object_points(_sample_points(frames, cfg.max_points), plane, cfg)
    if selection is not None:
        selected = _sample_points(frames, cfg.max_points, selection)
        if len(selected) == 0:
            raise ValueError("the given mask / region / pixel selects no valid depth pixel")
        chosen = _object_points(selected, plane, cfg)
        if len(chosen) == 0:
            # A pixel or region on the bare table: centre there, over the table point it shows.
            feet = selected - plane.height_m(selected)[:, None] * plane.normal
            centre_camera = np.median(feet, axis=0)
            warnings.append("the selection shows no object on the table: the workspace is centred on it")
        else:
            centre_camera = None
            objects = chosen
    else:
        centre_camera = None

    # Table-frame coordinates (origin where the optical axis meets the table) of the objects.
    origin_camera = _optical_axis_on_table(plane)
    objects_table = (objects - origin_camera) @ R_camera_workspace
    if len(objects_table):
        lo, hi = objects_table[:, :2].min(axis=0), objects_table[:, :2].max(axis=0)
        footprint_centre = 0.5 * (lo + hi)
        extent = (float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(objects_table[:, 2].max()))
    else:
        lo = hi = footprint_centre = np.zeros(2)
        extent = (0.0, 0.0, 0.0)
        if selection is None:
            warnings.append("nothing stands on the table (an empty table, or a wall): the workspace is "
                            "centred where the optical axis meets the plane")
    if centre_camera is not None:
        footprint_centre = ((centre_camera - origin_camera) @ R_camera_workspace)[:2]

    if size_m is None:
        size = np.maximum((hi - lo) + 2.0 * cfg.margin_m, STANDARD_WORKSPACE.size_m)
    else:
        size = np.asarray(size_m, float)
        if size.shape != (2,) or np.any(size <= 0):
            raise ValueError(f"workspace size must be two positive lengths (x, y) in metres, got {size_m}")
    area = TableArea(float(size[0]), float(size[1]), height_m, table_height_m)
    if centre_camera is None and len(objects_table) and np.any(hi - lo > size - 2.0 * cfg.margin_m):
        footprint_centre = _densest_window(objects_table[:, :2], size - 2.0 * cfg.margin_m)

    corner_table = np.array([*(footprint_centre - 0.5 * size), -table_height_m])
    T_camera_workspace = np.eye(4)
    T_camera_workspace[:3, :3] = R_camera_workspace
    T_camera_workspace[:3, 3] = origin_camera + R_camera_workspace @ corner_table
    T_workspace_camera = invert(T_camera_workspace)

    share_inside = 1.0
    if len(objects):
        inside = area.inside(transform_points(T_workspace_camera, objects))
        share_inside = float(inside.mean())
        if share_inside < 0.99:
            warnings.append(f"{1.0 - share_inside:.0%} of the object points lie outside the "
                            f"{area.size_x_m:.2f} x {area.size_y_m:.2f} m workspace and are dropped")
    return WorkspaceEstimate(T_workspace_camera, area, plane.inlier_share, plane.residual_m, len(objects),
                             extent, share_inside, warnings)


def _densest_window(xy: np.ndarray, window_m: np.ndarray, cell_m: float = 0.01) -> np.ndarray:
    """Centre of the ``window_m`` rectangle holding the most of the points ``xy``: a workspace smaller
    than the objects' footprint goes where most of the objects are, not between groups of them."""
    from scipy.ndimage import uniform_filter

    lo = xy.min(axis=0)
    cells = np.floor((xy - lo) / cell_m).astype(int)
    counts = np.zeros(cells.max(axis=0) + 1)
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1.0)
    span = np.maximum(1, np.round(window_m / cell_m).astype(int))
    density = uniform_filter(counts, size=tuple(span), mode="constant")
    best = np.array(np.unravel_index(np.argmax(density), density.shape))
    return lo + (best + 0.5) * cell_m


def _optical_axis_on_table(plane: TablePlane) -> np.ndarray:
    """Where the optical axis meets the table (camera frame), or the camera's foot on the table when
    it looks nearly parallel to it."""
    along = -plane.normal[2]
    if along > 0.1:
        return np.array([0.0, 0.0, plane.offset_m / along])
    return -plane.offset_m * plane.normal


@dataclass
class CameraPoseCheck:
    """How a given ``T_workspace_camera`` places the table the depth shows."""

    table_found: bool
    height_error_m: float = float("nan")  # fitted table height minus the workspace's, under its centre
    tilt_deg: float = float("nan")
    warnings: list[str] = field(default_factory=list)


def check_camera_pose(frames: Sequence[DepthFrame] | DepthFrame, T_workspace_camera: np.ndarray,
                      table_height_m: float = STANDARD_WORKSPACE.table_height_m,
                      centre_xy_m: tuple[float, float] = (0.15, 0.15), max_height_error_m: float = 0.02,
                      max_tilt_deg: float = 5.0, config: TableFitConfig | None = None) -> CameraPoseCheck:
    """Fit the table and compare it with where the given camera pose says it is."""
    try:
        plane = fit_table(frames, config)
    except TableNotFoundError as error:
        return CameraPoseCheck(False, warnings=[f"the camera pose cannot be checked: {error}"])
    R, t = T_workspace_camera[:3, :3], T_workspace_camera[:3, 3]
    normal = R @ plane.normal  # workspace frame
    offset = plane.offset_m - normal @ t
    tilt = float(np.degrees(np.arccos(np.clip(abs(normal[2]), -1.0, 1.0))))
    warnings = []
    if abs(normal[2]) < 0.2:
        return CameraPoseCheck(True, float("nan"), tilt, [
            f"the table is tilted {tilt:.0f} deg in the workspace frame: the camera pose is wrong "
            "(try --workspace auto or diffgrasp calibrate)"])
    x, y = centre_xy_m
    height = -(offset + normal[0] * x + normal[1] * y) / normal[2]
    error = float(height - table_height_m)
    if abs(error) > max_height_error_m:
        warnings.append(f"the table is fitted at z = {height:.3f} m, {error * 100:+.1f} cm from the workspace's "
                        f"{table_height_m:.3f} m: the camera pose is off (try --workspace auto or diffgrasp calibrate)")
    if tilt > max_tilt_deg:
        warnings.append(f"the table is tilted {tilt:.1f} deg from the workspace's xy plane (more than "
                        f"{max_tilt_deg:.0f}): the camera pose is off")
    return CameraPoseCheck(True, error, tilt, warnings)
