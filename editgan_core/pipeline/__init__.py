"""The EditGAN steps: align and cut photos, embed (and tune), segment-driven edits, vectors, the few-shot branch, labelling, and handing edits back to photos."""
