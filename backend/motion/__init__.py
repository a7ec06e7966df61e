"""Motion: voice + emotion keys -> ARKit-52 blendshapes, 3D landmarks, head pose, blinks.

Modules, one job each: ``data`` (real clips -> training arrays), ``features`` (model input
normalisation), ``speech_vae`` (audio -> mouth VAE), ``emotion`` (Gaussian emotion bank and
the audio "auto" estimator), ``ldm`` (landmark deformation model + emotion classifier),
``blinks``, ``head``, ``model`` (the bundle and its weights file), ``train`` and
``performance`` (the public entry point: ``animate``, ``iter_animation``). Import
submodules directly; torch loads lazily.
"""
