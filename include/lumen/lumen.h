/// @file
/// lumen: Ray's programming model in one process, on a work-stealing scheduler with fibers.
#pragma once

#include "lumen/actor.h"
#include "lumen/cancel.h"
#include "lumen/error.h"
#include "lumen/graph.h"
#include "lumen/large_buffer.h"
#include "lumen/metrics.h"
#include "lumen/object_ref.h"
#include "lumen/on_resolved.h"
#include "lumen/parallel_for.h"
#include "lumen/parallel_invoke.h"
#include "lumen/parallel_reduce.h"
#include "lumen/parallel_scan.h"
#include "lumen/parallel_sort.h"
#include "lumen/partition.h"
#include "lumen/pipeline.h"
#include "lumen/promise.h"
#include "lumen/runtime.h"
#include "lumen/state.h"
#include "lumen/stream.h"
#include "lumen/task.h"
#include "lumen/task_group.h"
#include "lumen/timeline.h"
#include "lumen/version.h"

/// @namespace lumen
/// Ray's programming model in one process: tasks and their ObjectRefs, actors, the object
/// table, task groups, parallel algorithms, streams, pipelines and graphs, all on one
/// work-stealing scheduler whose tasks run on fibers. lumen/lumen.h includes all of it.
