"""The bottom layer: errors, safe file primitives, the clock; imports nothing of the product above it."""
