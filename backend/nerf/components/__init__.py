"""What every field is rendered with: the head box and rays, the occupancy grid, the
sampler, volume rendering and layer compositing, the attention lattice and its row
gathers, the training camera optimizer, image metrics. Imports no field."""
