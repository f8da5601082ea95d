//! A time limit that really cancels: every operator of the physical plan is wrapped in
//! [`DeadlineExec`], whose stream fails once the deadline has passed. An operator that loops over
//! its input without ever yielding to tokio (a cross join collecting its build side) still pulls
//! each batch through a wrapper, so it stops at the next batch; the error tears the plan down and
//! the spawned tasks end when their streams are dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties};
use futures::StreamExt;

/// The error a stream returns past the deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

#[derive(Debug)]
struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Instant,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("DeadlineExec")
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("DeadlineExec has one child".into()));
        }
        Ok(Arc::new(DeadlineExec { input: children.swap_remove(0), deadline: self.deadline }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if Instant::now() > self.deadline {
            return Err(DataFusionError::External(Box::new(DeadlineExceeded)));
        }
        let inner = self.input.execute(partition, context)?;
        let schema = inner.schema();
        let deadline = self.deadline;
        let stream =
            inner.map(move |batch| if Instant::now() > deadline { Err(DataFusionError::External(Box::new(DeadlineExceeded))) } else { batch });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Wraps every operator of the plan.
pub(crate) fn wrap(plan: Arc<dyn ExecutionPlan>, deadline: Instant) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| Ok(Transformed::yes(Arc::new(DeadlineExec { input: node, deadline }) as Arc<dyn ExecutionPlan>))).map(|t| t.data)
}
