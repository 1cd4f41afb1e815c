"""Widget data: resolution (access, query version, merged parameter values), the cache key, and
the two-tier cache with single-flight behind GetWidgetData and BatchGetWidgetData."""

from server.widgetdata.cache import WidgetDataCache
from server.widgetdata.counters import CacheStats, stats
from server.widgetdata.service import WidgetDataDomain

__all__ = ["CacheStats", "WidgetDataCache", "WidgetDataDomain", "stats"]
