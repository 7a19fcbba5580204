"""Contact-map transfer for the LEAP hand (issue 22; arXiv 2511.01276, "Contact Map Transfer with a Conditional
Diffusion Model"): a template grasp's contacts carried onto a new instance of its category, then a hand pose
and joints that realise them.

``transfer`` (the steps the ``leap:template=FILE`` method plans with: observe, predict, select, fit), ``model``
(encoders, dual mapping, cascaded map denoisers), ``optimise`` (contact selection and the pose / joint fit),
``pretrained`` (weights on disk: ``models/leap_transfer``), ``config`` (sizes).
"""
