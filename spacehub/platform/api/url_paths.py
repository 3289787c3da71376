"""`{name:any_path}` in a route: like `:path`, but a decoded newline (`%0A`) still matches.

Starlette's `:path` is `.*`, which stops at a newline: such a URL then matched no route at all
and got a bare 404 without the Hub's X-Error-Code.
"""

from starlette.convertors import PathConvertor, register_url_convertor

ANY_PATH = "any_path"


class AnyPathConvertor(PathConvertor):
    regex = "(?s:.*)"


register_url_convertor(ANY_PATH, AnyPathConvertor())
