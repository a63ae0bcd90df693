"""Training: the resumable engine (training loop and checkpoints) and the GAN trainer."""
