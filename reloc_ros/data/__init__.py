"""Reading posed images: rosbags, dataset layouts, the synthetic scene."""
