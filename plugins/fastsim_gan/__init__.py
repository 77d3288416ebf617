"""GAN fast simulation of pixel and strip clusters (a trackcore plugin; entry point ``fastsim_gan``)."""
