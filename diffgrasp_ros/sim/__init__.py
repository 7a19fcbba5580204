"""Simulated world: PyBullet clutter scenes, camera and gripper."""
