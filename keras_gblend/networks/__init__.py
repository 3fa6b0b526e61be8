"""The networks: late and mid fusion models, their fusion layers and the
encoders."""
