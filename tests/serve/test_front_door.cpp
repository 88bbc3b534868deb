// The front door over loopback.
#include <doctest/doctest.h>
#include <lumen/serve/serve.h>
