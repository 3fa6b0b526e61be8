"""The model core: `BlendedModel`, its heads, their losses and the blend
state. It imports neither G-Blend nor OGM-GE: they plug in through the blend
weights and a gradient transform."""
