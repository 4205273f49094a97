"""freqtrade with markets from a local file instead of the exchange (no network)."""
import json, os, sys
from freqtrade.exchange import exchange as ex

MARKETS = json.load(open(os.environ["FT_MARKETS"]))

async def _reload_from_file(self, reload=False):
    self._api_async.set_markets(MARKETS)

ex.Exchange._api_reload_markets = _reload_from_file
from freqtrade.main import main
main(sys.argv[1:])
