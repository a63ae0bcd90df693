"""The networks: the StyleGAN2 generator and its ops, the discriminator, the segmentation branch, the perceptual distances and the bf16 fast path."""
