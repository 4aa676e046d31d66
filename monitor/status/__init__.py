"""The status page: hourly rollups and uptime, pages, SVG charts and badges.

    histogram  fixed log-spaced latency buckets that add up across hours
    rollup     an hour's counts, merged windows, uptime and coverage (pure)
    incidents  failed -> recovered spans from the event history (pure)
    cache      the front page's uptime sums over closed hours, kept between views
    svg        sparklines and latency charts, rendered on the server
    badges     status / uptime / latency badges (SVG) and shields.io endpoint JSON
    views      what a page shows, built from the store
    access     settings.status_page: public | token | off
    routes     the Starlette routes, templates and the stylesheet

Nothing here imports monitor.store at import time except `views` and `routes`,
because the store imports `rollup` to write its rows.
"""
