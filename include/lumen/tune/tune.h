/// @file
/// lumen::tune: hyperparameter search on lumen's scheduler. Everything in one include.
#pragma once

#include "lumen/tune/asha.h"
#include "lumen/tune/concurrency_limiter.h"
#include "lumen/tune/config.h"
#include "lumen/tune/hyperband.h"
#include "lumen/tune/median_stopping.h"
#include "lumen/tune/pbt.h"
#include "lumen/tune/random_search.h"
#include "lumen/tune/repeater.h"
#include "lumen/tune/result.h"
#include "lumen/tune/result_grid.h"
#include "lumen/tune/scheduler.h"
#include "lumen/tune/search_space.h"
#include "lumen/tune/searcher.h"
#include "lumen/tune/stopper.h"
#include "lumen/tune/tpe_search.h"
#include "lumen/tune/trainable.h"
#include "lumen/tune/trial.h"
#include "lumen/tune/tuner.h"

/// @namespace lumen::tune
/// Hyperparameter search (lumen-tune), as Ray Tune does it: a trainable over a search space,
/// searchers, schedulers and stoppers, with each trial a lumen task. See docs/tune.md.
