"""Tri-plane NeRF with landmark attention: the photoreal renderer of a captured subject.

Modules: ``geometry`` (head box, rays, box intersection), ``tokens`` (which landmarks
condition the field), ``model`` (tri-planes + attention + MLP), ``occupancy`` (the grid
that keeps samples near the surface), ``render`` (sampling + volume rendering),
``metrics`` (PSNR/SSIM). Import submodules directly; torch loads on use.
"""
