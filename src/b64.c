/* b64: not written yet */
#include "gitgate/err.h"
