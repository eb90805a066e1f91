"""The crawl's configuration: what a TOML site file says, checked.

:mod:`crawler.config.model` holds the frozen sections (``[crawl]``, ``[browser]``,
``[pool]``...) with every default in one place; :mod:`crawler.config.loader` reads a TOML
file into them, rejecting unknown keys and naming the file and key of every error;
:mod:`crawler.config.checks` are the value checks; :mod:`crawler.config.fields` is the
field language (what a field is, before it is compiled for a page) and
:mod:`crawler.config.identity` parses proxies, headers and cookie files.

May import only the leaves (``crawler.errors``, ``crawler.urls``).  Components take the
section they use (a :class:`PoolSection`, a :class:`BrowserSection`...), not the whole
:class:`Config`; only the composition (``crawler.run``, the CLI) holds all of it.
"""

from crawler.config.loader import check_url as check_url
from crawler.config.loader import from_dict as from_dict
from crawler.config.loader import load as load
from crawler.config.loader import override as override
from crawler.config.loader import parse_id_range as parse_id_range
from crawler.config.loader import to_toml as to_toml
from crawler.config.loader import validate as validate
from crawler.config.model import CAPTURE_TIMEOUT_S as CAPTURE_TIMEOUT_S
from crawler.config.model import INPUT_LOOKAHEAD as INPUT_LOOKAHEAD
from crawler.config.model import OUTAGE_S as OUTAGE_S
from crawler.config.model import SECTIONS as SECTIONS
from crawler.config.model import SESSION_BACKOFF_S as SESSION_BACKOFF_S
from crawler.config.model import SNAPSHOT_EVERY as SNAPSHOT_EVERY
from crawler.config.model import BrowserSection as BrowserSection
from crawler.config.model import CaptureRule as CaptureRule
from crawler.config.model import Config as Config
from crawler.config.model import CrawlSection as CrawlSection
from crawler.config.model import DebugSection as DebugSection
from crawler.config.model import ExtractSection as ExtractSection
from crawler.config.model import FollowRule as FollowRule
from crawler.config.model import InputSection as InputSection
from crawler.config.model import ItemsRule as ItemsRule
from crawler.config.model import MonitorSection as MonitorSection
from crawler.config.model import OutputSection as OutputSection
from crawler.config.model import PoolSection as PoolSection
from crawler.config.model import RateLimitSection as RateLimitSection
from crawler.config.model import RetrySection as RetrySection
from crawler.config.model import RouteSpec as RouteSpec
from crawler.config.model import SessionSection as SessionSection
from crawler.config.model import SiteSection as SiteSection
from crawler.config.model import StoreSection as StoreSection
from crawler.config.model import WatchdogSection as WatchdogSection
from crawler.errors import ConfigError as ConfigError
