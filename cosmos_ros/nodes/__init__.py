"""Thin rclpy layer: node modules convert messages to and from core types, own timers and publishers, and
call the core. Everything else lives in the pure-Python modules one level up."""
