"""Motion: voice + emotion keys -> ARKit-52 blendshapes, 3D landmarks, head pose, blinks.

Modules, one job each: ``data`` (real clips -> training arrays), ``features`` (model input
normalisation), ``speech`` (audio -> mouth VAE), ``emotion`` (Gaussian emotion bank and
the audio "auto" estimator), ``ldm`` (landmark deformation model + emotion classifier),
``blinks``, ``head``, ``model`` (the bundle and its weights file), ``train`` and
``animate`` (the public entry point). Import submodules directly; torch loads lazily.
"""
