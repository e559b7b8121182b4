"""Demo data for the whole product: a brand selling skincare, hair care, mother-and-baby products, tea
and supplements runs its private domain with five operators. ``manage.py seed_demo`` makes its last ~18
months at any scale (a million contacts, three million purchases and ten million touchpoints in a few
minutes on two cores), plus its campaigns content.

- ``seed``: ``demo_seed`` (what the command runs) and ``demo_data_seed``, the steps of one seed;
- ``generator``: the one random stream, the plan and the chunks, drawing on ``people``, ``purchases``,
  ``communities`` and ``touchpoints``, each one section of the data;
- ``vocabulary``: the brand's channels, tags, products, personas, regions ...; ``staff``: the demo logins;
- ``tables``: column layouts and the writers that load rows (``COPY`` or ``executemany``);
- ``campaigns``: the script library, segments, SOPs and broadcasts.

Rows are made by plain Python from precomputed pools (names, phones, times of day, touchpoint kinds),
never by calling Faker per row, in chunks of contacts; ids are assigned here, from the current maximum,
and the sequences are moved past them at the end. The same seed, sizes and day make the same data.

This app has no models; nothing imports it but its command (and the benchmarks and tests).
"""
