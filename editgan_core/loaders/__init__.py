"""Where models come from: checkpoints of every published format, the safe unpickler, the Hub resolver, the registry, and the Bundle of a generator with its companions."""
