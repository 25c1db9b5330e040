"""cosmos_ros: Cosmos 3 world-model planning and safety-bounded setpoint streaming for ROS 2.

The pure-Python core (runtime, action spaces, safety, scheduling, images) never imports rclpy; node modules
under ``cosmos_ros.nodes`` are the thin ROS layer on top.
"""

__version__ = "0.1.0"
