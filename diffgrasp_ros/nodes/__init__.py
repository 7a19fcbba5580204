"""The ROS 2 layer: thin lifecycle nodes over the library (the only code that imports rclpy)."""
