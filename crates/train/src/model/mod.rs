//! The network: a ResNet-18 backbone ([`resnet`]) and SIT-FER's heads ([`heads`]).

pub mod heads;
pub mod resnet;
