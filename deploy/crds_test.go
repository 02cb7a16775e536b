package deploy_test

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Typed structs of the custom resources the chart renders, after their CRD schemas (the fields the
// chart uses; strict decoding fails on anything else, so a typo in a template is caught).

type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

type clusterRef struct {
	Name             string `json:"name,omitempty"`
	Namespace        string `json:"namespace,omitempty"`
	ConnectionSecret *struct {
		Name string `json:"name"`
	} `json:"connectionSecret,omitempty"`
}

type rmqExchange struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Name                     string     `json:"name"`
		Vhost                    string     `json:"vhost"`
		Type                     string     `json:"type"`
		Durable                  bool       `json:"durable"`
		AutoDelete               bool       `json:"autoDelete"`
		RabbitmqClusterReference clusterRef `json:"rabbitmqClusterReference"`
	} `json:"spec"`
}

type rmqQueue struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Name                     string         `json:"name"`
		Vhost                    string         `json:"vhost"`
		Type                     string         `json:"type"`
		Durable                  bool           `json:"durable"`
		AutoDelete               bool           `json:"autoDelete"`
		Arguments                map[string]any `json:"arguments,omitempty"`
		DeletionPolicy           string         `json:"deletionPolicy,omitempty"`
		RabbitmqClusterReference clusterRef     `json:"rabbitmqClusterReference"`
	} `json:"spec"`
}

type rmqBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Vhost                    string     `json:"vhost"`
		Source                   string     `json:"source"`
		Destination              string     `json:"destination"`
		DestinationType          string     `json:"destinationType"`
		RoutingKey               string     `json:"routingKey"`
		RabbitmqClusterReference clusterRef `json:"rabbitmqClusterReference"`
	} `json:"spec"`
}

type rmqPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Name                     string         `json:"name"`
		Vhost                    string         `json:"vhost"`
		Pattern                  string         `json:"pattern"`
		ApplyTo                  string         `json:"applyTo"`
		Priority                 int            `json:"priority"`
		Definition               map[string]any `json:"definition"`
		RabbitmqClusterReference clusterRef     `json:"rabbitmqClusterReference"`
	} `json:"spec"`
}

type rmqCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas int `json:"replicas"`
		Rabbitmq struct {
			AdditionalConfig string `json:"additionalConfig"`
		} `json:"rabbitmq"`
	} `json:"spec"`
}
