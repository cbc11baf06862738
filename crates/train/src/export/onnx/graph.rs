//! An ONNX graph under construction: the handful of operators the shipped networks use (opset
//! [`OPSET`]), each appended as a node whose weights become initializers, with every value's per-face shape
//! computed as it is made. Shapes are static but for the batch: a wiring mistake (an `Add` of two different
//! shapes) fails here, when exporting, rather than in the user's runtime.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{EnumOrUnknown, MessageField};
use tch::{Kind, Tensor};

use crate::model::inference::FoldedConv;

/// The default-domain operator set written: ONNX 1.12 (2022), which ONNX Runtime ≥ 1.12, OpenVINO and
/// TensorRT 8.5+ read; `ReduceL2` still takes its axes as an attribute there.
pub(crate) const OPSET: i64 = 17;
/// The IR version that goes with [`OPSET`].
pub(crate) const IR_VERSION: i64 = 8;
/// The name of the batch dimension of the input and the output.
pub(crate) const BATCH: &str = "batch";

/// A value in the graph: its name and its shape for one face (the batch dimension left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) name: String,
    pub(crate) shape: Vec<i64>,
}

/// The nodes and initializers so far.
#[derive(Default)]
pub(crate) struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Numbers the values without a layer name (`relu_7`).
    count: usize,
}

/// An integer-list attribute.
fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: EnumOrUnknown::new(AttributeType::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: EnumOrUnknown::new(AttributeType::INT), i: v, ..Default::default() }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: EnumOrUnknown::new(AttributeType::FLOAT), f: v, ..Default::default() }
}

/// The output size of a convolution or pooling window along one axis (no dilation, floor rounding: what
/// PyTorch computes without `ceil_mode`).
pub(crate) fn window_out(size: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    (size + 2 * padding - kernel) / stride + 1
}

/// A tensor initializer named `name` from its little-endian bytes.
fn raw_initializer(name: &str, dims: Vec<i64>, data_type: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto { name: name.into(), dims, data_type: data_type as i32, raw_data, ..Default::default() }
}

/// A float tensor's values as an initializer named `name`.
fn initializer(name: &str, t: &Tensor) -> TensorProto {
    let t = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
    let values = Vec::<f32>::try_from(t.flatten(0, -1)).expect("a float tensor converts to f32 values");
    raw_initializer(name, t.size(), DataType::FLOAT, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Integers (`int64`) as a 1-d initializer named `name`.
fn int64_initializer(name: &str, values: &[i64]) -> TensorProto {
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_initializer(name, vec![values.len() as i64], DataType::INT64, raw)
}

/// A float tensor type `[batch, shape…]`.
fn value_info(v: &Value) -> ValueInfoProto {
    let batch = Dimension { value: Some(dimension::Value::DimParam(BATCH.into())), ..Default::default() };
    let dims = v.shape.iter().map(|&d| Dimension { value: Some(dimension::Value::DimValue(d)), ..Default::default() });
    let tensor = type_proto::Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: MessageField::some(TensorShapeProto {
            dim: std::iter::once(batch).chain(dims).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    ValueInfoProto {
        name: v.name.clone(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Graph {
    /// A fresh name for an unnamed value of operator `op`.
    fn fresh(&mut self, op: &str) -> String {
        self.count += 1;
        format!("{}_{}", op.to_lowercase(), self.count)
    }

    fn node(&mut self, op: &str, name: String, inputs: Vec<String>, attribute: Vec<AttributeProto>) -> String {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.clone(),
            input: inputs,
            output: vec![name.clone()],
            attribute,
            ..Default::default()
        });
        name
    }

    fn weight(&mut self, name: String, t: &Tensor) -> String {
        self.initializers.push(initializer(&name, t));
        name
    }

    /// Convolution `c` (its batch norm folded in) on `x`; `name` is the layer's variable prefix.
    pub(crate) fn conv(&mut self, name: &str, x: &Value, c: &FoldedConv) -> Value {
        let [cout, cin, kh, kw] = c.weight.size()[..] else { panic!("{name}: a convolution weight is 4-d") };
        assert_eq!(x.shape[0], cin, "{name}: {cin} input channels, the value has {:?}", x.shape);
        let w = self.weight(format!("{name}.weight"), &c.weight);
        let b = self.weight(format!("{name}.bias"), &c.bias);
        let (s, p) = (c.stride, c.padding);
        let attrs = vec![ints("kernel_shape", &[kh, kw]), ints("strides", &[s, s]), ints("pads", &[p, p, p, p])];
        let out = self.node("Conv", name.into(), vec![x.name.clone(), w, b], attrs);
        Value { name: out, shape: vec![cout, window_out(x.shape[1], kh, s, p), window_out(x.shape[2], kw, s, p)] }
    }

    pub(crate) fn relu(&mut self, x: &Value) -> Value {
        let name = self.fresh("Relu");
        Value { name: self.node("Relu", name, vec![x.name.clone()], vec![]), shape: x.shape.clone() }
    }

    /// A square pooling window, unpadded but for `padding` on every side.
    fn pool(&mut self, op: &str, x: &Value, window: [i64; 3], extra: Vec<AttributeProto>) -> Value {
        let [kernel, stride, padding] = window;
        let name = self.fresh(op);
        let mut attrs = vec![
            ints("kernel_shape", &[kernel, kernel]),
            ints("strides", &[stride, stride]),
            ints("pads", &[padding; 4]),
        ];
        attrs.extend(extra);
        let out = self.node(op, name, vec![x.name.clone()], attrs);
        let side = |s| window_out(s, kernel, stride, padding);
        Value { name: out, shape: vec![x.shape[0], side(x.shape[1]), side(x.shape[2])] }
    }

    pub(crate) fn max_pool(&mut self, x: &Value, kernel: i64, stride: i64, padding: i64) -> Value {
        self.pool("MaxPool", x, [kernel, stride, padding], vec![])
    }

    /// An unpadded average; `count_include_pad` mirrors the `avg_pool2d` call of dlib's shortcut, though with
    /// no padding it changes nothing.
    pub(crate) fn avg_pool(&mut self, x: &Value, kernel: i64, stride: i64) -> Value {
        self.pool("AveragePool", x, [kernel, stride, 0], vec![int("count_include_pad", 1)])
    }

    /// Zeros appended after `x` along each per-face axis (`[channels, height, width]`); `x` itself when none.
    pub(crate) fn pad_end(&mut self, x: &Value, after: [i64; 3]) -> Value {
        if after == [0; 3] {
            return x.clone();
        }
        let name = self.fresh("Pad");
        // ONNX pads: every axis's start, then every axis's end, the batch axis first.
        let ends: Vec<i64> = [0, 0, 0, 0, 0].into_iter().chain(after).collect();
        let pads = int64_initializer(&format!("{name}.pads"), &ends);
        let pads_name = pads.name.clone();
        self.initializers.push(pads);
        let out = self.node("Pad", name, vec![x.name.clone(), pads_name], vec![]);
        Value { name: out, shape: x.shape.iter().zip(after).map(|(s, a)| s + a).collect() }
    }

    pub(crate) fn add(&mut self, a: &Value, b: &Value) -> Value {
        assert_eq!(a.shape, b.shape, "adding {} and {} of different shapes", a.name, b.name);
        let name = self.fresh("Add");
        Value { name: self.node("Add", name, vec![a.name.clone(), b.name.clone()], vec![]), shape: a.shape.clone() }
    }

    /// The mean over each channel's map, flattened: `[C, H, W]` → `[C]`.
    pub(crate) fn global_mean(&mut self, x: &Value) -> Value {
        let pool = self.fresh("GlobalAveragePool");
        let pooled = self.node("GlobalAveragePool", pool, vec![x.name.clone()], vec![]);
        let flat = self.fresh("Flatten");
        Value { name: self.node("Flatten", flat, vec![pooled], vec![int("axis", 1)]), shape: vec![x.shape[0]] }
    }

    /// `x / max(‖x‖₂, eps)` over the feature axis: what the heads' normalisation computes.
    pub(crate) fn l2_normalise(&mut self, x: &Value, eps: f32) -> Value {
        let norm = self.fresh("ReduceL2");
        let norm = self.node("ReduceL2", norm, vec![x.name.clone()], vec![ints("axes", &[1]), int("keepdims", 1)]);
        let floor = self.weight(format!("{norm}.eps"), &Tensor::from(eps));
        let clamped = self.fresh("Max");
        let clamped = self.node("Max", clamped, vec![norm, floor], vec![]);
        let name = self.fresh("Div");
        Value { name: self.node("Div", name, vec![x.name.clone(), clamped], vec![]), shape: x.shape.clone() }
    }

    /// `scale · x Wᵀ + b` for a `[out, in]` weight: a linear layer reading its input multiplied by `scale`.
    pub(crate) fn linear(&mut self, name: &str, x: &Value, w: &Tensor, b: &Tensor, scale: f32) -> Value {
        let [out, input] = w.size()[..] else { panic!("{name}: a linear weight is 2-d") };
        assert_eq!(x.shape, [input], "{name}: input of {input} features");
        let w = self.weight(format!("{name}.weight"), w);
        let b = self.weight(format!("{name}.bias"), b);
        let attrs = vec![int("transB", 1), float("alpha", scale)];
        Value { name: self.node("Gemm", name.into(), vec![x.name.clone(), w, b], attrs), shape: vec![out] }
    }

    /// `x` under the name `name` (the graph's output).
    pub(crate) fn identity(&mut self, x: &Value, name: &str) -> Value {
        Value { name: self.node("Identity", name.into(), vec![x.name.clone()], vec![]), shape: x.shape.clone() }
    }

    /// The model: `input` to `output`, `metadata` as its key–value properties.
    pub(crate) fn model(self, input: &Value, output: &Value, doc: String, metadata: &[(&str, String)]) -> ModelProto {
        let graph = GraphProto {
            name: "sitfer_classifier".into(),
            node: self.nodes,
            initializer: self.initializers,
            input: vec![value_info(input)],
            output: vec![value_info(output)],
            ..Default::default()
        };
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET, ..Default::default() }],
            producer_name: "sitfer train".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc,
            graph: MessageField::some(graph),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: (*k).into(), value: v.clone(), ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_are_pytorchs() {
        // ResNet's 7×7/2 stem, padding 3, on 224 px: 112; its 3×3/2 max pool, padding 1: 56.
        assert_eq!(window_out(224, 7, 2, 3), 112);
        assert_eq!(window_out(112, 3, 2, 1), 56);
        // dlib's 7×7/2 stem without padding on 64 px: 29; 3×3/2 pool: 14; a 3×3/2 down conv: 6.
        assert_eq!(window_out(64, 7, 2, 0), 29);
        assert_eq!(window_out(29, 3, 2, 0), 14);
        assert_eq!(window_out(14, 3, 2, 0), 6);
    }

    #[test]
    fn shapes_follow_the_nodes_and_the_model_round_trips() {
        use protobuf::Message;
        let mut g = Graph::default();
        let x = Value { name: "input".into(), shape: vec![3, 9, 9] };
        let conv = FoldedConv {
            weight: Tensor::ones([4, 3, 3, 3], (Kind::Float, tch::Device::Cpu)),
            bias: Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)),
            stride: 2,
            padding: 1,
        };
        let y = g.conv("stem", &x, &conv);
        assert_eq!(y.shape, [4, 5, 5]);
        let y = g.relu(&y);
        let short = g.avg_pool(&x, 2, 2);
        assert_eq!(short.shape, [3, 4, 4]);
        let short = g.pad_end(&short, [1, 1, 1]);
        assert_eq!(short.shape, [4, 5, 5]);
        let y = g.add(&y, &short);
        let f = g.global_mean(&y);
        assert_eq!(f.shape, [4]);
        let h = g.l2_normalise(&f, 1e-12);
        let w = Tensor::ones([2, 4], (Kind::Float, tch::Device::Cpu));
        let z = g.linear("fc", &h, &w, &Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)), 16.0);
        assert_eq!(z.shape, [2]);
        let bytes = g.model(&x, &z, "doc".into(), &[("classes", "a,b".into())]).write_to_bytes().unwrap();
        let back = ModelProto::parse_from_bytes(&bytes).unwrap();
        let ops: Vec<&str> = back.graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Conv",
                "Relu",
                "AveragePool",
                "Pad",
                "Add",
                "GlobalAveragePool",
                "Flatten",
                "ReduceL2",
                "Max",
                "Div",
                "Gemm"
            ]
        );
        // Weights: the conv's weight and bias, the pads, eps, fc's weight and bias; the pads are int64.
        assert_eq!(back.graph.initializer.len(), 6);
        let pads = back.graph.initializer.iter().find(|t| t.name.ends_with(".pads")).unwrap();
        assert_eq!(pads.data_type, DataType::INT64 as i32);
        assert_eq!(pads.raw_data.len(), 8 * 8);
        assert_eq!(pads.raw_data[8 * 5], 1, "the channel axis's end");
        let w = &back.graph.initializer[0];
        assert_eq!(
            (w.name.as_str(), w.dims.as_slice(), w.raw_data.len()),
            ("stem.weight", &[4i64, 3, 3, 3][..], 4 * 108)
        );
        let dims: Vec<_> = back.graph.output[0].type_.tensor_type().shape.dim.iter().map(|d| d.value.clone()).collect();
        assert_eq!(dims, [Some(dimension::Value::DimParam(BATCH.into())), Some(dimension::Value::DimValue(2))]);
        assert_eq!((back.opset_import[0].version, back.ir_version), (OPSET, IR_VERSION));
        assert_eq!(back.metadata_props[0].value, "a,b");
    }

    #[test]
    #[should_panic(expected = "different shapes")]
    fn an_add_of_mismatched_shapes_fails_at_export() {
        let mut g = Graph::default();
        let a = Value { name: "a".into(), shape: vec![4, 5, 5] };
        let b = Value { name: "b".into(), shape: vec![4, 4, 4] };
        g.add(&a, &b);
    }
}
