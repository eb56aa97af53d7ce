"""CLIP building blocks shared by the CLIP-based detectors: the open_clip loader, the prompt learner, the
prompted CLIP model and its detector base, supervised contrastive loss, and the exact rewrites of open_clip's
attention, QuickGELU and class-token blocks."""
