"""The default object set, its generator and the object loader of the simulated world."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pybullet
import pytest

from diffgrasp_ros.sim.generate_objects import (DEFAULT_SEED, GRASP_EXTENT_M, MASS_KG, MAX_EXTENT_M,
                                                generate)
from diffgrasp_ros.sim.object_set import (DEFAULT_OBJECTS_DIR, MESH_DENSITY_KG_M3, ObjectLoadError,
                                          ObjectModel, default_objects, find_objects, load_object)

AABB_MARGIN_M = 0.008  # PyBullet pads mesh and cylinder bounding boxes by a few millimetres
IDENTITY = (0.0, 0.0, 0.0, 1.0)


@pytest.fixture
def client():
    client_id = pybullet.connect(pybullet.DIRECT)
    yield client_id
    pybullet.disconnect(client_id)


def aabb(client_id: int, body: int) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = pybullet.getAABB(body, physicsClientId=client_id)
    return np.array(lower), np.array(upper)


def mass_of(client_id: int, body: int) -> float:
    return pybullet.getDynamicsInfo(body, -1, physicsClientId=client_id)[0]


# -- meshes written by the tests --------------------------------------------------------------------
def cube(size: float, offset=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, list[list[int]]]:
    """Corners and outward quads of an axis-aligned cube with its minimum corner at ``offset``."""
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float) * size
    quads = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
    return corners + offset, quads


def write_obj(path: Path, parts: list[tuple[np.ndarray, list[list[int]]]]) -> Path:
    """Faces as quads with (ignored) normal indices, as exporters write them."""
    lines, base = [], 0
    for vertices, faces in parts:
        lines += [f"v {x} {y} {z}" for x, y, z in vertices]
        lines += ["f " + " ".join(f"{base + i + 1}//1" for i in face) for face in faces]
        base += len(vertices)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_stl(path: Path, vertices: np.ndarray, quads: list[list[int]], binary: bool) -> Path:
    triangles = [vertices[[q[0], q[k], q[k + 1]]] for q in quads for k in (1, 2)]
    if binary:
        path.write_bytes(b"\0" * 80 + struct.pack("<I", len(triangles)) + b"".join(
            struct.pack("<12fH", 0.0, 0.0, 0.0, *t.ravel(), 0) for t in triangles))
    else:
        vertex_lines = ["".join(f"  vertex {x} {y} {z}\n" for x, y, z in t) for t in triangles]
        facets = "".join(f"facet normal 0 0 0\n outer loop\n{v} endloop\nendfacet\n" for v in vertex_lines)
        path.write_text(f"solid cube\n{facets}endsolid cube\n")
    return path


# -- the default set --------------------------------------------------------------------------------
def test_default_set_has_disjoint_deterministic_splits():
    everything, train, val = default_objects(), default_objects("train"), default_objects("val")
    names = [m.name for m in everything]
    assert len(everything) == 40 and len(set(names)) == len(names)
    assert {m.name for m in train}.isdisjoint(m.name for m in val)
    assert sorted(m.name for m in train + val) == sorted(names)
    assert 0.2 <= len(val) / len(everything) <= 0.3
    # Meshes referenced by the URDFs are not objects of their own.
    assert all(m.path.suffix == ".urdf" for m in everything)
    assert everything == find_objects(DEFAULT_OBJECTS_DIR)
    relative = [m.path.relative_to(DEFAULT_OBJECTS_DIR).as_posix() for m in everything]
    assert relative == sorted(relative)
    with pytest.raises(ValueError, match="unknown object split"):
        default_objects("test")


def test_generator_reproduces_the_committed_files(tmp_path):
    generate(tmp_path / "same", DEFAULT_SEED)

    def contents(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    committed, regenerated = contents(DEFAULT_OBJECTS_DIR), contents(tmp_path / "same")
    assert regenerated.keys() == committed.keys()
    for name, data in regenerated.items():
        assert data == committed[name], f"{name} differs: regenerate the default object set"

    generate(tmp_path / "other", DEFAULT_SEED + 1)
    assert (tmp_path / "other/train/box_01.urdf").read_bytes() != committed["train/box_01.urdf"]


@pytest.mark.parametrize("scale", [0.8, 1.0])
def test_default_objects_load_with_sensible_size_and_mass(client, scale):
    low, high = GRASP_EXTENT_M
    for model in default_objects():
        body = load_object(client, model, (0.0, 0.0, 1.0), IDENTITY, scale)
        lower, upper = aabb(client, body)
        extents = upper - lower
        assert extents.max() <= MAX_EXTENT_M * scale + AABB_MARGIN_M, model.name
        assert np.any((extents >= low * scale) & (extents <= high * scale + AABB_MARGIN_M)), model.name
        # PyBullet keeps URDF masses at any globalScaling.
        assert MASS_KG[0] <= mass_of(client, body) <= MASS_KG[1], model.name
        # Link origins are centres of mass, so the base pose PyBullet reports is the requested one.
        position = pybullet.getBasePositionAndOrientation(body, physicsClientId=client)[0]
        assert np.allclose(position, (0.0, 0.0, 1.0), atol=1e-6), model.name
        pybullet.removeBody(body, physicsClientId=client)


def test_default_objects_come_to_rest_on_a_plane(client):
    pybullet.setGravity(0.0, 0.0, -9.81, physicsClientId=client)
    plane = pybullet.createMultiBody(0.0, pybullet.createCollisionShape(pybullet.GEOM_PLANE,
                                                                        physicsClientId=client),
                                     physicsClientId=client)
    pybullet.changeDynamics(plane, -1, lateralFriction=1.0, physicsClientId=client)
    for model in default_objects():
        body = load_object(client, model, (0.0, 0.0, 1.0), IDENTITY, 1.0)
        drop_height = 1.0 - aabb(client, body)[0][2] + 0.02
        pybullet.resetBasePositionAndOrientation(body, (0.0, 0.0, drop_height), IDENTITY,
                                                 physicsClientId=client)
        for _ in range(240):  # one second
            pybullet.stepSimulation(physicsClientId=client)
        position = np.array(pybullet.getBasePositionAndOrientation(body, physicsClientId=client)[0])
        linear, angular = pybullet.getBaseVelocity(body, physicsClientId=client)
        assert np.linalg.norm(linear) < 0.02 and np.linalg.norm(angular) < 0.1, model.name
        assert np.linalg.norm(position[:2]) < 0.02 and 0.0 < position[2] < MAX_EXTENT_M, model.name
        pybullet.removeBody(body, physicsClientId=client)


# -- mesh folders -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["obj", "ascii_stl", "binary_stl"])
def test_mesh_only_folder_loads_with_mass_from_volume(tmp_path, client, kind):
    size = 0.04
    vertices, quads = cube(size)
    if kind == "obj":
        write_obj(tmp_path / "cube.obj", [(vertices, quads)])
    else:
        write_stl(tmp_path / "cube.stl", vertices, quads, binary=kind == "binary_stl")
    [model] = find_objects(tmp_path)
    assert model.name == "cube"
    for scale in (1.0, 2.0):
        body = load_object(client, model, (0.1, 0.0, 1.0), IDENTITY, scale)
        assert mass_of(client, body) == pytest.approx(MESH_DENSITY_KG_M3 * (size * scale) ** 3, rel=1e-4)
        # The centre of mass is the cube's centre, not the mesh origin at its corner.
        com = pybullet.getBasePositionAndOrientation(body, physicsClientId=client)[0]
        assert np.allclose(com, np.array([0.1, 0.0, 1.0]) + size * scale / 2, atol=1e-6)
        lower, upper = aabb(client, body)
        assert np.allclose(upper - lower, size * scale, atol=AABB_MARGIN_M)


def test_open_mesh_gets_its_convex_hull_volume(tmp_path, client):
    size, gap = 0.04, 0.04
    two_cubes = [cube(size), cube(size, (size + gap, 0.0, 0.0))]
    open_pair = [two_cubes[0], (two_cubes[1][0], two_cubes[1][1][:-1])]  # one face missing
    closed = ObjectModel("closed", write_obj(tmp_path / "closed.obj", two_cubes))
    opened = ObjectModel("open", write_obj(tmp_path / "open.obj", open_pair))
    body = load_object(client, closed, (0.0, 0.0, 1.0), IDENTITY, 1.0)
    assert mass_of(client, body) == pytest.approx(MESH_DENSITY_KG_M3 * 2 * size**3, rel=1e-4)
    body = load_object(client, opened, (0.0, 0.0, 1.0), IDENTITY, 1.0)
    hull_volume = size * size * (2 * size + gap)
    assert mass_of(client, body) == pytest.approx(MESH_DENSITY_KG_M3 * hull_volume, rel=1e-4)


MUG_URDF = """<?xml version="1.0"?>
<robot name="mug"><link name="base_link">
  <inertial><mass value="0.1"/><inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
  <visual><geometry><mesh filename="meshes/mug_visual.obj"/></geometry></visual>
  <collision><geometry><mesh filename="meshes/mug_collision.obj"/></geometry></collision>
</link></robot>
"""


def test_meshes_referenced_by_a_urdf_are_not_objects(tmp_path, client):
    (tmp_path / "meshes").mkdir()
    for name in ("mug_visual", "mug_collision", "rock_collision"):
        write_obj(tmp_path / "meshes" / f"{name}.obj", [cube(0.03)])
    (tmp_path / "mug.urdf").write_text(MUG_URDF)
    objects = find_objects(tmp_path)
    assert objects == [ObjectModel("rock_collision", tmp_path / "meshes/rock_collision.obj"),
                       ObjectModel("mug", tmp_path / "mug.urdf")]
    for model in objects:
        assert mass_of(client, load_object(client, model, (0.0, 0.0, 1.0), IDENTITY, 1.0)) > 0.0


def test_objects_with_the_same_file_name_are_named_by_path(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_obj(tmp_path / folder / "block.obj", [cube(0.03)])
    assert [m.name for m in find_objects(tmp_path)] == ["a/block", "b/block"]


# -- errors -----------------------------------------------------------------------------------------
def test_missing_and_empty_folders_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_objects(tmp_path / "nowhere")
    (tmp_path / "README.md").write_text("no objects here\n")
    with pytest.raises(ValueError, match="no objects in"):
        find_objects(tmp_path)


def test_corrupt_files_raise_clear_errors(tmp_path, client):
    truncated = tmp_path / "truncated.urdf"
    truncated.write_text(MUG_URDF[:120])
    with pytest.raises(ValueError, match="not a valid URDF"):
        find_objects(tmp_path)
    with pytest.raises(ObjectLoadError, match="PyBullet cannot load"):
        load_object(client, ObjectModel("truncated", truncated), (0.0, 0.0, 0.0), IDENTITY, 1.0)

    no_links = tmp_path / "no_links.urdf"
    no_links.write_text('<?xml version="1.0"?>\n<robot name="empty"/>\n')
    with pytest.raises(ObjectLoadError, match="PyBullet cannot load"):
        load_object(client, ObjectModel("no_links", no_links), (0.0, 0.0, 0.0), IDENTITY, 1.0)

    garbage = tmp_path / "garbage.obj"
    garbage.write_text("this is not a mesh\n")
    with pytest.raises(ObjectLoadError, match="cannot read mesh"):
        load_object(client, ObjectModel("garbage", garbage), (0.0, 0.0, 0.0), IDENTITY, 1.0)

    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ObjectLoadError, match="flat or degenerate"):
        load_object(client, ObjectModel("flat", flat), (0.0, 0.0, 0.0), IDENTITY, 1.0)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_object(client, ObjectModel("gone", tmp_path / "gone.urdf"), (0.0, 0.0, 0.0), IDENTITY, 1.0)
