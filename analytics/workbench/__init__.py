"""The workbench (工作台): the page an operator opens at 9:00, and the landing page after login.

``week`` is its calendar (today, this week to date, the same days of last week, in the business time zone),
``queries`` the blocks of an operator's day and the staff figures, ``team`` the blocks only managers see
(approvals, failed imports, WeCom syncs and callbacks, groups needing attention), ``views`` the page.
Every block is one or two set-based queries, scoped with ``visible_to`` / ``user_scope_q``; the page runs
a fixed number of queries whatever the size of the data.
"""
