"""Policy runtime: loads a Cosmos 3 pipeline and turns (image, goal) into raw normalised actions.

No ROS imports here. Backends (diffusers reference, fast torch path, TensorRT) share one request/output
contract defined in ``cosmos_ros.runtime.backend``.
"""
