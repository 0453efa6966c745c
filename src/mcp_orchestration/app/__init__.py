"""The only use-case layer: settings, the App context, operations, deploy, rotation and the host's trust state."""
