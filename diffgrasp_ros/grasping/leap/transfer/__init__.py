"""Contact-map transfer for the LEAP hand (issue 22; arXiv 2511.01276, "Contact Map Transfer with a Conditional
Diffusion Model"): a template grasp's contacts carried onto a new instance of its category, then a hand pose
and joints that realise them.

Not trained yet: weights to come. Nothing here is a planner, and nothing is wired into the CLI or the grasp
server: ``model`` (encoders, dual mapping, cascaded map denoisers), ``optimise`` (contact selection and the
pose / joint fit), ``pretrained`` (weights on disk), ``config`` (sizes).
"""
