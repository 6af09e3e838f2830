/* keyfile: not written yet */
#include "gitgate/err.h"
