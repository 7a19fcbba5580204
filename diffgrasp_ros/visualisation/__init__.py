"""Showing planned grasps: the browser 3D viewer (``viewer``, viser), the hand meshes it draws (``hands``) and
the scene grasps.json keeps for it (``record``)."""
