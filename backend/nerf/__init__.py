"""Tri-plane NeRF with landmark attention: the photoreal renderer of a captured subject.

Laid out as nerfstudio lays out a method, each module one concept, imports pointing down:

* ``components/``: what any field is rendered with - ``geometry`` (head box, rays, box
  intersection), ``occupancy`` (the grid that keeps samples near the surface),
  ``sampler`` (where along a ray), ``volume_rendering`` (along rays; two layers composited),
  ``lattice`` (where attention is evaluated), ``gather`` (weighted row lookups),
  ``camera_optimizer`` (training pose refinement), ``metrics`` (PSNR/SSIM);
* ``fields/``: the field's parts - ``triplane``, ``torso``, ``attention`` and its
  ``tokens``, ``deformation`` (the mesh warp);
* ``model``: the subject's field put together (``FaceNeRF``); ``reference``: its ray
  by ray render path; ``engine``: the fused path (same frames, fewer, larger ops);
* ``view``: one image from one camera; ``pipeline``: a sequence of frames from a
  ``Conditioning``.

Import submodules directly; torch loads on use.
"""
