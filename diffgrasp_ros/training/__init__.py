"""Training data: labelled grasps generated in simulation, stored compactly, re-rendered on demand."""
