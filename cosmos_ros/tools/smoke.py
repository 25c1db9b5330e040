"""Temporary smoke entry point."""


def main() -> int:
    from cosmos_ros.msg import ActionSequence

    print(ActionSequence())
    return 0
