"""One quick ``gw.fit`` call with the training tests' defaults (Adam 0.05, batch 16, silent)."""

import gradwell as gw


def quick_fit(model, data, *, epochs, **kw):
    args = dict(
        loss=gw.nn.CrossEntropyLoss(),
        optimizer=gw.optim.Adam(model.parameters(), lr=0.05),
        epochs=epochs,
        batch_size=16,
        seed=0,
        verbose=0,
    )
    args.update(kw)
    return gw.fit(model, data, **args)
