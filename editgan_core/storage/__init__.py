"""What is read and written: the one file-format module, latents, vectors, generator identities, masks as images, and images as inputs."""
