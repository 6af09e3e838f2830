/* config: not written yet */
#include "gitgate/err.h"
